"""SageMaker on the wire: the AWS protocols boto3 and the SageMaker Python SDK speak, served by
the control plane on its one port.

``gateway.py`` tells AWS requests from the rest (a SigV4 signature or an ``X-Amz-Target``)
and hands each to its service by the signature's scope: ``sagemaker.py`` (awsJson1_1, the
operation table over ``ControlPlane``), ``logs.py`` (CloudWatch Logs, its events read by
``logevents.py``), ``cloudwatch.py`` (CloudWatch metrics; its older protocol is ``query.py``),
``sts.py`` and ``s3.py`` (the S3 REST API over the encrypted object store). ``credentials.py``
makes, seals and opens the SigV4 access keys; the signature algorithm itself is
``orchestrator.sigv4`` (pure, shared with the invocation data plane, which serves the runtime's
``InvokeEndpoint``). ``errors.py`` maps the product's error tree onto the AWS error codes each
protocol uses. ``sagemaker_wire.py`` keeps SageMaker's requests and answers to SageMaker's
members (``sagemaker_model.py``, generated from botocore's model), and ``compat.py`` writes
docs/sagemaker-compat.md from the tables.
"""
