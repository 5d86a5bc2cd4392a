"""``facepolicy bake --executor ray``: batch rows as Ray tasks, on this machine or across a Ray cluster (driver side).

Ray is an optional dependency (``pip install facepolicy[ray]``): it is imported only when a RayExecutor runs, never
by the add-on. What a worker runs is core/batch/ray_tasks.py; here: network.py (addresses, reaching the head node,
the local instance's environment), executor.py (``RayExecutor``), arguments.py (the command-line options).

Two ways for data to reach the workers:
- ``shared`` (default): inputs and outputs are paths every node can reach (NFS, SMB, a cloud mount). Workers
  read and write them in place, atomically, exactly as the local batch does.
- ``object-store``: this machine reads each row's inputs and ships them through Ray's object store (a --blend
  file and each model folder once per batch); the worker bakes into a private temporary folder and returns the
  files, which this machine writes as one group. For small files on clusters without a shared filesystem.
"""
