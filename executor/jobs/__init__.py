"""The queue protocol that the web process and the workers share, on RQ and Redis.

- `request.py`: what a client asks to run, validated alike by the API and the workers;
- `statuses.py`: a job's status words;
- `files.py`, `tests_in.py`: the files and the test cases a request brings;
- `queue.py`: submit, read, wait for and cancel jobs, as the web process does;
- `batches.py`: jobs submitted, read, waited for and canceled together;
- `views.py`: a job as clients see it, built from what was read of it;
- `pacing.py`: repeat polls answered at most once per pace;
- `live.py`: a job's output as the program writes it, on a stream per job;
- `liveness.py`: worker heartbeats, and the settling of jobs whose worker died;
- `routing.py`: a queue per language, which idle worker a job wakes, and jobs no worker runs any longer;
- `wakes.py`: an idle worker's wake list, and the script function that wakes one;
- `announcements.py`: the languages the workers announce;
- `guarded_writes.py`: RQ's writes run by a script only while a condition holds;
- `serializer.py`: jobs and results as JSON, the large ones compressed;
- `connection.py`: the Redis client as the web process builds it.

With `workers/`, the only code that imports rq.
"""
