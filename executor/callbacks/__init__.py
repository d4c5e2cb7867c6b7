"""Signed callbacks (API.md 1.1): when a job (or a batch's last job) ends, its view is POSTed to the
client's `callback_url`, signed, retried, and never to an address the service must not reach.

- `addresses.py`: which URLs and addresses may be called (no server-side request forgery);
- `signing.py`: the signature header, and how a receiver checks it;
- `records.py`: what Redis holds of each callback: pending, scheduled, its state in the view;
- `sender.py`: one attempt: resolve, check, connect to the checked address, POST, read a little;
- `notifier.py`: the process that notices ends and delivers (the Procfile's `notifier`), apart
  from the workers, so no program a worker runs delays a delivery.
"""
