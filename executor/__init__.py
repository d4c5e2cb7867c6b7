"""executor: runs untrusted programs for other programs.

A request's journey, package by package:

1. `executor.web`: the HTTP API validates the request (`routes.py`, with the model of
   `executor.jobs.request`) and queues it;
2. `executor.jobs`: the queue protocol on RQ and Redis, shared by both sides: submit, read, wait,
   cancel (`queue.py`), a job's view (`views.py`), liveness (`liveness.py`);
3. `workers`: `rq worker` processes take the job from its language's queue (`worker.py`) and run
   it (`tasks.py`), judged over its test cases by `executor.judging` when it has any;
4. `executor.sandbox`: one program in a fresh, limited process tree, its outcome as a result;
5. back through RQ's result to `executor.jobs.views`, and the client's poll or wait, or, when the
   job named a `callback_url`, to `executor.callbacks`' notifier, which POSTs the view, signed.

`executor.settings` (every knob, from the environment) and `executor.languages` serve them all.
`devtools` (a local Redis, `make run`) is never imported by production code.
"""
