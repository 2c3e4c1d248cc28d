"""The public surface: ``__all__`` lists exactly the public names, sorted."""

import wowevent_kombu


def test_all_is_complete_and_sorted():
    public = {
        name for name, value in vars(wowevent_kombu).items()
        if not name.startswith("_") and not isinstance(value, type(wowevent_kombu))
        and name not in {"annotations"}
    }  # fmt: skip
    assert set(wowevent_kombu.__all__) == public
    assert wowevent_kombu.__all__ == sorted(wowevent_kombu.__all__)


def test_every_error_derives_from_the_root():
    for name in wowevent_kombu.__all__:
        value = getattr(wowevent_kombu, name)
        if isinstance(value, type) and issubclass(value, Exception) and name != "SkipDelivery":
            assert issubclass(value, wowevent_kombu.WowEventError), name
