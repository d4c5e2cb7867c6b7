"""What `rq worker` runs: the job function and the worker class around it."""
