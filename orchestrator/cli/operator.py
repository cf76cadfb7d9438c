"""``orch operator``: run the Kubernetes operator (imports the operator only when run)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.common import err_console


def operator(
    *,
    namespace: Annotated[
        str | None, typer.Option(help="Namespace to watch (ORCH_KUBE__NAMESPACE).")
    ] = None,
    once: Annotated[bool, typer.Option(help="One reconcile pass, then exit.")] = False,
) -> None:
    """Reconcile TrainingJob, Model, EndpointConfig and Endpoint resources in a cluster.

    In a pod it uses its service account; elsewhere KUBECONFIG (or ~/.kube/config).
    """
    from orchestrator.kube.operator import operator_from_environment, serve_metrics

    op = operator_from_environment(namespace)
    if once:
        op.run_once()
        return
    if op.metrics_port is not None:
        serve_metrics(op.metrics_port)
        err_console.print(f"operator metrics on :{op.metrics_port}/metrics", markup=False)
    err_console.print(f"operator watching namespace {op.namespace}", markup=False)
    try:
        op.run()
    except KeyboardInterrupt:
        op.stop()
