"""A handler whose init phase (module import) takes INIT_SLEEP_S seconds."""

import os
import time

time.sleep(float(os.environ.get("INIT_SLEEP_S", "0")))


def handler(event, context):
    return {"initialization_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
