"""AWS link runbook: link an AWS account to a node-deployment service.

The notebooks in ``notebooks/`` call this library; ``runbook run`` executes
them headless with papermill and keeps an audit record of every AWS call.
"""

__version__ = "0.1.0"
