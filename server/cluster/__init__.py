"""The cluster deployment (issue 20): PostgreSQL for the data, procrastinate for the queue,
LISTEN/NOTIFY for the events, a shared folder for the files; N web replicas and M workers.

- ``replica``: the parts of a web replica (``python -m server run --database-url ...``);
- ``worker``: the worker process (``python -m server worker ...``) and its one task;
- ``queue``: tickets, the round-robin claim over users;
- ``transactions``: the queue entry, the abort and the NOTIFY inside the job store's
  transactions;
- ``notify`` / ``listener``: events across replicas;
- ``reconciler``: R7 by leases;
- ``shared_hooks``: the test hooks across processes.

Without ``--database-url`` none of this is imported: the embedded server is as before.
"""
