"""``orch transform``: run a batch transform job (``Transformer.transform``) with a progress
bar, and list, describe, wait for, follow the log of, stop and delete transform jobs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
from rich.console import Group
from rich.filesize import decimal
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import (
    client,
    console,
    done,
    emit,
    err_console,
    parse_pairs,
    print_json,
    print_log,
    since,
    state,
    styled,
    when,
)
from orchestrator.cli.jobs import list_all
from orchestrator.client import Client, Transformer
from orchestrator.client.transformer import sdk_parameter
from orchestrator.errors import ValidationError
from orchestrator.resources.transform import (
    BatchStrategy,
    DescribeTransformJobResponse,
    ListTransformJobsResponse,
    SplitType,
    TransformJobStatus,
    TransformJobSummary,
    TransformProgress,
)

app = typer.Typer(
    help="Batch transform jobs: run with a progress bar, list, describe, logs, stop, delete."
)

Name = Annotated[str, typer.Argument(help="Transform job name.")]

# The flag behind each Transformer parameter, so that a value the request refuses is a usage
# error naming the flag.
FLAGS = {
    "model_name": "--model",
    "data": "--input",
    "data_type": "--manifest",
    "output_path": "--output",
    "content_type": "--content-type",
    "split_type": "--split-type",
    "compression_type": "--compression",
    "strategy": "--strategy",
    "max_payload": "--max-payload",
    "max_concurrent_transforms": "--max-concurrent",
    "assemble_with": "--assemble-with",
    "accept": "--accept",
    "instance_count": "--instance-count",
    "instance_type": "--instance-type",
    "input_filter": "--input-filter",
    "output_filter": "--output-filter",
    "join_source": "--join-source",
    "job_name": "--name",
    "env": "--env",
    "tags": "--tag",
    "model_client_config": "--invocations-timeout / --invocations-retries",
}


def _s3_uri(value: str | None) -> str | None:
    if value is not None and not value.startswith("s3://"):
        raise typer.BadParameter(f"give an s3:// URI (e.g. s3://bucket/prefix/), not {value!r}")
    return value


@app.command()
def run(
    ctx: typer.Context,
    *,
    model: Annotated[str, typer.Option("--model", help="The Model that scores the records.")],
    input_uri: Annotated[
        str,
        typer.Option(
            "--input",
            metavar="S3_URI",
            callback=_s3_uri,
            help="Every object under this prefix (or each one the manifest lists).",
        ),
    ],
    output_uri: Annotated[
        str | None,
        typer.Option(
            "--output",
            metavar="S3_URI",
            callback=_s3_uri,
            help="Where <key>.out files go (default: s3://orchestrator/<job name>).",
        ),
    ] = None,
    manifest: Annotated[
        bool, typer.Option("--manifest", help="--input is a manifest file (ManifestFile).")
    ] = False,
    content_type: Annotated[
        str | None, typer.Option(help="The input's MIME type, e.g. text/csv.")
    ] = None,
    split_type: Annotated[
        SplitType | None, typer.Option(help="How to cut an object into records.")
    ] = None,
    compression: Annotated[
        Literal["None", "Gzip"] | None, typer.Option(help="The input's compression.")
    ] = None,
    strategy: Annotated[
        BatchStrategy | None,
        typer.Option(help="Records per request: as many as fit (MultiRecord) or one."),
    ] = None,
    max_payload: Annotated[
        int | None, typer.Option(min=0, max=100, help="Largest request in MB (default 6).")
    ] = None,
    max_concurrent: Annotated[
        int | None,
        typer.Option(min=0, max=1000, help="Requests in flight per instance."),
    ] = None,
    assemble_with: Annotated[
        Literal["None", "Line"] | None,
        typer.Option(help="End each answer with a newline (Line)."),
    ] = None,
    accept: Annotated[
        str | None, typer.Option(help="The output's MIME type (the Accept header).")
    ] = None,
    instance_count: Annotated[int, typer.Option(min=1, max=100, help="Instances.")] = 1,
    instance_type: Annotated[str, typer.Option(help="Instance type.")] = "local",
    input_filter: Annotated[
        str | None, typer.Option(help="JSONPath of what to send, e.g. '$[1:]'.")
    ] = None,
    output_filter: Annotated[
        str | None, typer.Option(help="JSONPath of what to keep, e.g. '$[0,-1]'.")
    ] = None,
    join_source: Annotated[
        Literal["Input", "None"] | None, typer.Option(help="Join each answer to its input.")
    ] = None,
    invocations_timeout: Annotated[
        int | None, typer.Option(min=1, max=3600, help="Seconds per model call (default 600).")
    ] = None,
    invocations_retries: Annotated[
        int | None, typer.Option(min=0, max=3, help="Retries of a call that timed out.")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="Environment variable (repeatable)."),
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option(metavar="KEY=VALUE", help="Tag (repeatable).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Job name (default: the model's name and a timestamp).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the job, with a progress bar.")
    ] = True,
    poll: Annotated[float, typer.Option(min=0, help="Seconds between progress updates.")] = 1.0,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Stop waiting after this many seconds.")
    ] = None,
) -> None:
    """Score every record of every input object with a model; write <key>.out for each."""
    environment = parse_pairs(env, "--env")
    tags = parse_pairs(tag, "--tag")
    client_config = {
        k: v
        for k, v in (
            ("InvocationsTimeoutInSeconds", invocations_timeout),
            ("InvocationsMaxRetries", invocations_retries),
        )
        if v is not None
    }
    api = client(ctx)
    transformer = Transformer(
        model,
        instance_count,
        instance_type,
        strategy=strategy,
        assemble_with=assemble_with,
        output_path=output_uri,
        accept=accept,
        max_concurrent_transforms=max_concurrent,
        max_payload=max_payload,
        tags=tags,
        env=environment,
        client=api,
    )
    try:
        transformer.transform(
            input_uri,
            "ManifestFile" if manifest else "S3Prefix",
            content_type=content_type,
            compression_type=compression,
            split_type=split_type,
            job_name=name,
            input_filter=input_filter,
            output_filter=output_filter,
            join_source=join_source,
            model_client_config=client_config or None,
            wait=False,
        )
    except ValidationError as e:
        raise _as_usage_error(e) from e
    job_name = transformer.latest_transform_job
    assert job_name is not None  # transform() has created it
    if not wait:
        if state(ctx).json:
            print_json(api.describe_transform_job(job_name))
        else:
            console.print(f"started transform job [bold]{escape(job_name)}[/bold]")
            console.print(f"follow it with: orch transform wait {job_name}", markup=False)
        return
    if not state(ctx).json:
        console.print(f"started transform job [bold]{escape(job_name)}[/bold]")
    _watch_and_finish(ctx, api, job_name, poll=poll, timeout=timeout)


def _as_usage_error(e: ValidationError) -> Exception:
    """An error on the value of a flag as a usage error naming the flag: the Transformer's
    (``"strategy: why"``) or the server's on a request field (``ModelName``); any other
    error as it is."""
    head, sep, why = e.message.partition(": ")
    params = head.split(", ") if sep else []
    if params and all(p in FLAGS for p in params):
        return typer.BadParameter(why, param_hint=" / ".join(FLAGS[p] for p in params))
    param = sdk_parameter(e.field)
    if param in FLAGS:
        return typer.BadParameter(e.message, param_hint=FLAGS[param])
    return e


@app.command()
def wait(
    ctx: typer.Context,
    name: Name,
    poll: Annotated[float, typer.Option(min=0, help="Seconds between progress updates.")] = 1.0,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Stop waiting after this many seconds.")
    ] = None,
) -> None:
    """Wait for a transform job with a progress bar; exit 1 unless it completed."""
    _watch_and_finish(ctx, client(ctx), name, poll=poll, timeout=timeout)


# --- the progress bar --------------------------------------------------------------------------
class ProgressBar:
    """A rich progress bar fed with each Describe: bytes done of the total, files done,
    records and records per second. Empty progress (nothing listed yet) is a pulsing bar."""

    def __init__(self, name: str) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[bytes]}"),
            TextColumn("{task.fields[files]}"),
            TextColumn("{task.fields[records]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.name = name
        self.task = self.progress.add_task(
            name, total=None, bytes="", files="", records="", start=True
        )

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def update(self, job: DescribeTransformJobResponse) -> None:
        p = job.Progress
        total: float | None = float(p.BytesTotal) if p.BytesTotal > 0 else None
        completed = float(p.BytesProcessed)
        if total is None and job.TransformJobStatus == TransformJobStatus.COMPLETED:
            total, completed = 1.0, 1.0  # no input bytes at all: done is full
        words = progress_fields(p)
        self.progress.update(
            self.task,
            description=f"{self.name} {job.TransformJobStatus}",
            total=total,
            completed=min(completed, total) if total is not None else completed,
            bytes=words["bytes"],
            files=words["files"],
            records=words["records"],
        )
        self.progress.refresh()


def progress_fields(p: TransformProgress) -> dict[str, str]:
    """The bar's words: ``1.2 MB/3.4 MB``, ``2/5 files``, ``1,200 records 350/s``."""
    rate = f" {p.RecordsPerSecond:,.0f}/s" if p.RecordsPerSecond else ""
    size = f"{decimal(p.BytesProcessed)}/{decimal(p.BytesTotal)}" if p.BytesTotal else ""
    files = f"{p.FilesCompleted}/{p.FilesTotal} files" if p.FilesTotal else "- files"
    return {"bytes": size, "files": files, "records": f"{p.RecordsProcessed:,} records{rate}"}


def _watch_and_finish(
    ctx: typer.Context, api: Client, name: str, *, poll: float, timeout: float | None
) -> None:
    try:
        if state(ctx).json:
            job = api.wait_for_transform_job(name, poll=poll, timeout=timeout)
        else:
            with ProgressBar(name) as bar:
                job = api.wait_for_transform_job(
                    name, poll=poll, timeout=timeout, on_progress=bar.update
                )
    except KeyboardInterrupt:
        err_console.print(
            f"stopped watching; the job goes on. Watch: orch transform wait {name}  "
            f"Stop: orch transform stop {name}",
            markup=False,
        )
        raise typer.Exit(130) from None
    if state(ctx).json:
        print_json(job)
    else:
        console.print(_summary(job))
    if job.TransformJobStatus != TransformJobStatus.COMPLETED:
        reason = job.FailureReason or (
            "stopped on request"
            if job.TransformJobStatus == TransformJobStatus.STOPPED
            else "no reason given"
        )
        err_console.print(
            f"[bold red]error:[/bold red] [red]transform job {escape(name)} ended "
            f"{job.TransformJobStatus}: {escape(reason)}[/red]"
        )
        raise typer.Exit(1)


def _summary(job: DescribeTransformJobResponse) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Transform job", Text(job.TransformJobName))
    grid.add_row("Status", styled(job.TransformJobStatus))
    grid.add_row("Progress", Text(_progress_line(job.Progress)))
    grid.add_row("Output", Text(job.TransformOutput.S3OutputPath))
    if job.FailureReason:
        grid.add_row("Failure reason", Text(job.FailureReason, style="red"))
    return grid


def _progress_line(p: TransformProgress) -> str:
    f = progress_fields(p)
    parts = [f["files"], f["records"], f["bytes"]]
    if p.ModelLatencyMicroseconds is not None:
        parts.append(f"model latency {p.ModelLatencyMicroseconds / 1000:,.1f} ms")
    return ", ".join(part for part in parts if part)


# --- list, describe, logs, stop, delete ----------------------------------------------------------
@app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        TransformJobStatus | None, typer.Option(help="Only jobs with this status.")
    ] = None,
    name_contains: Annotated[str | None, typer.Option(help="Only names containing this.")] = None,
    max_results: Annotated[
        int | None, typer.Option("--max", min=1, max=100, help="Page size (1-100).")
    ] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow NextToken to the end.")] = False,
) -> None:
    """List transform jobs, newest first."""
    resp: ListTransformJobsResponse = list_all(
        client(ctx).list_transform_jobs,
        all_pages,
        StatusEquals=status.value if status is not None else None,
        NameContains=name_contains,
        MaxResults=max_results,
    )
    emit(ctx, resp, lambda: _print_list(resp.TransformJobSummaries, resp.NextToken))


def _print_list(jobs: list[TransformJobSummary], next_token: str | None) -> None:
    table = Table("Name", "Status", "Created", "Duration", "Failure reason")
    for j in jobs:
        table.add_row(
            Text(j.TransformJobName),
            styled(j.TransformJobStatus),
            when(j.CreationTime),
            since(j.CreationTime, j.TransformEndTime),
            Text(j.FailureReason or ""),
        )
    console.print(table)
    if next_token:
        console.print("[dim]more jobs: use --all to list them all[/dim]")


@app.command()
def describe(ctx: typer.Context, name: Name) -> None:
    """Show a transform job: status, reason, progress, per-file progress, instances."""
    job = client(ctx).describe_transform_job(name)
    emit(ctx, job, lambda: console.print(_panel(job)))


def _panel(job: DescribeTransformJobResponse) -> Panel:
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    info.add_row("Status", styled(job.TransformJobStatus))
    if job.FailureReason:
        info.add_row("Failure reason", Text(job.FailureReason, style="red"))
    info.add_row("Model", Text(job.ModelName))
    source = job.TransformInput.DataSource.S3DataSource
    tin = job.TransformInput
    info.add_row("Input", Text(f"{source.S3Uri} ({source.S3DataType})"))
    info.add_row(
        "Records",
        Text(
            f"{tin.ContentType or 'no content type'}, split {tin.SplitType}, "
            f"compression {tin.CompressionType}; {job.strategy}, "
            f"at most {job.max_payload_mb} MB a request"
            + (f", {job.MaxConcurrentTransforms} at once" if job.MaxConcurrentTransforms else "")
        ),
    )
    out = job.TransformOutput
    info.add_row(
        "Output",
        Text(f"{out.S3OutputPath} (assemble with {out.AssembleWith}, accept {out.Accept or '-'})"),
    )
    if job.DataProcessing is not None:
        dp = job.DataProcessing
        info.add_row(
            "Data processing",
            Text(
                f"input {dp.InputFilter or '$'}, join {dp.JoinSource}, "
                f"output {dp.OutputFilter or '$'}"
            ),
        )
    res = job.TransformResources
    info.add_row("Instances", f"{res.InstanceCount} x {escape(res.InstanceType)}")
    info.add_row("Created", when(job.CreationTime))
    if job.TransformStartTime is not None:
        info.add_row("Ran", since(job.TransformStartTime, job.TransformEndTime))
    info.add_row("Progress", Text(_progress_line(job.Progress)))
    parts: list[Any] = [info]
    if job.Progress.Files:
        t = Table("File", "Size", "Done", "Records", "Status", title="Files")
        for f in job.Progress.Files:
            share = f" ({f.BytesProcessed / f.SizeBytes:.0%})" if f.SizeBytes else ""
            t.add_row(
                Text(f.Key),
                decimal(f.SizeBytes),
                f"{decimal(f.BytesProcessed)}{share}",
                f"{f.RecordsProcessed:,}",
                styled(f.Status),
            )
        if job.Progress.FilesTotal > len(job.Progress.Files):
            t.caption = f"{len(job.Progress.Files)} of {job.Progress.FilesTotal} files shown"
        parts.append(t)
    if job.Instances:
        t = Table("Instance", "Attempt", "Status", "Start", "End", "Message", title="Instances")
        for i in job.Instances:
            t.add_row(
                f"algo-{i.Instance + 1}",
                str(i.Attempt),
                styled(i.Status),
                when(i.StartTime),
                when(i.EndTime),
                Text(i.Message),
            )
        parts.append(t)
    return Panel(Group(*parts), title=f"[bold]{escape(job.TransformJobName)}[/bold]", expand=False)


@app.command()
def logs(
    ctx: typer.Context,
    name: Name,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
    ] = False,
) -> None:
    """Print a transform job's log (every instance's)."""
    api = client(ctx)
    print_log(lambda at: api.transform_job_logs(name, at), follow=follow)


@app.command()
def stop(ctx: typer.Context, name: Name) -> None:
    """Stop a transform job; output files already written stay."""
    client(ctx).stop_transform_job(name)
    done(ctx, {"TransformJobName": name, "TransformJobStatus": "Stopping"}, f"stopping {name}")


@app.command()
def delete(ctx: typer.Context, name: Name) -> None:
    """Delete a transform job's record (it must have ended; its output stays)."""
    client(ctx).delete_transform_job(name)
    done(ctx, {"TransformJobName": name}, f"deleted {name}")
