"""How the code runs: errors, profiles, the console, resources, process pools and clusters.

`errors` (the exception policy), `profiles` (every size and path of a run), `console` (what is
printed), `resources` (disk, memory and core checks), `workers` (the set-up of a worker
process), `parallel` (the process pool and its loops), `cluster` (Dask past one machine),
`code_dependencies` (what code a result depends on, and the layers).
"""
