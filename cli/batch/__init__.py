"""`mlfn batch`: score a dataset in S3 with a deployed model, record by record, nothing lost.

One module per job: `locations` (S3 URIs and the `<input>.out` naming), `readers` (streaming records out of S3
objects), `batches` (records grouped per call up to the payload limit), `invokers` (the model: its endpoint or the
runtime in this process), `writers` (outputs, error records and the checkpoint `--resume` reads), `progress`
(records/s and time left), `job` (the run and its Batch-Transform-style states).
"""
