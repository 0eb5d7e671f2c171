"""Outgoing webhooks: every committed event an endpoint asked for, signed, at least once.

Durability comes from the outbox. Each endpoint keeps a cursor, the id of the last event
of its organization it has taken; `fanout` turns the events after it into delivery rows
and moves the cursor in the same transaction, with a compare-and-set on the old value,
so an event is taken once by one process even when several run, and none is skipped
(an organization's event ids become visible strictly in order). A crash before that
commit leaves the cursor where it was; after it, the rows are there.

`sender` claims due rows with one atomic UPDATE that sets a lease, so each delivery is
attempted by one process at a time; a process that dies mid-attempt leaves a lease
that runs out, and the delivery is attempted again (a receiver may then see the same
``webhook-id`` twice, as it may after a timeout). Each endpoint is drained by its own
task with a bounded number of requests in flight: a slow or dead receiver holds up
nothing but itself.

Order: deliveries to one endpoint are first attempted in event order, but several are
in flight at once and retries come later, so a receiver may see them out of order; the
envelope's ``id`` (increasing within an organization) orders them.
"""
