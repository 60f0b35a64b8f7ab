"""Source adapters: real ESN exports and feeds turned into the activity and directory contracts.

Each adapter reads one format record by record (constant memory) and maps each record to zero or
more v1 activity events or directory records, or skips it with a reason; :mod:`.runner` drives
them for ``esn-pulse import``.
"""
