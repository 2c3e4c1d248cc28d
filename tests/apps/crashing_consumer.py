"""A Kombu consumer on the workers' transport that dies by SIGKILL on its first delivery.

``python -m tests.apps.crashing_consumer URL QUEUE`` consumes ``QUEUE`` the way a bus worker
does (the guarded transport, the queue consumed through its bell, acks expected), prints the
delivery tag of the first message it receives and kills itself before acknowledging it.
"""

import os
import signal
import sys

from kombu import Connection, Consumer, Queue

from wowevent_kombu.brokers.redis.channel import BELL_QUEUES_OPTION
from wowevent_kombu.worker.steps import GUARDED_TRANSPORT


def main(url: str, queue: str) -> None:
    options = {BELL_QUEUES_OPTION: [queue], "visibility_timeout": 1}

    def on_message(body, message):
        print(f"delivered {message.delivery_tag}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    with (
        Connection(url, transport=GUARDED_TRANSPORT, transport_options=options) as conn,
        Consumer(conn, queues=[Queue(queue, no_declare=True)], callbacks=[on_message],
                 accept=["json"]),
    ):  # fmt: skip
        while True:
            try:
                conn.drain_events(timeout=1)
            except TimeoutError:
                continue


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
