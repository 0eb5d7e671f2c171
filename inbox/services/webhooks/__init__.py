"""Outgoing webhooks: every committed event an endpoint asked for, signed, at least once.

Durability comes from the outbox. Each endpoint keeps a cursor, the id of the last event
of its organization it has taken; `fanout` turns the events after it into delivery rows
and moves the cursor in the same transaction, with a compare-and-set on the old value,
so an event is taken once by one process even when several run, and none is skipped
(an organization's event ids become visible strictly in order). A crash before that
commit leaves the cursor where it was; after it, the rows are there.

Each endpoint with deliveries due is drained by its own task (`drain`): it claims due
rows in batches with one atomic UPDATE that sets a lease long enough for the batch's
turn, so each delivery is attempted by one process at a time; a process that dies
mid-attempt leaves a lease that runs out, and the delivery is attempted again (a
receiver may then see the same ``webhook-id`` twice, as it may after a timeout). Up to
the endpoint's concurrency requests are in flight over kept-alive connections
(`client`), and their outcomes are recorded a batch to a transaction: a slow or dead
receiver holds up nothing but itself.

A commit wakes the sender only when its organization may have an active endpoint
(`active`, a set read again at most once a second, and at once when this process's API
changes an endpoint), so ingest for organizations without one costs nothing more; the
cursors, not that set, decide which events are owed, so a late view of the set delays
an event and loses none.

Order: deliveries to one endpoint are first attempted in event order, but several are
in flight at once and retries come later, so a receiver may see them out of order; the
envelope's ``id`` (increasing within an organization) orders them.
"""
