"""Dead letters: the record of a delivery that failed for good (with every attempt's story),
the retry history those attempts are kept in until then, and the Redis store operators list,
inspect, re-drive and purge.
"""
