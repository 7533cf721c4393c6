"""``build``, ``commit`` and ``diff``: images from Dockerfiles and from containers (chapter 8)."""

from __future__ import annotations

import click

from minidocker.cli.context import Context

pass_ctx = click.make_pass_decorator(Context)


@click.command("commit")
@click.argument("container")
@click.argument("repository", required=False)
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
@click.option(
    "-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image"
)
@click.option("-m", "--message", default="", help="Commit message")
@click.option("-p", "--pause/--no-pause", default=True, help="Pause container during commit (accepted)")
@pass_ctx
def commit(ctx: Context, container: str, repository: str | None, author: str, changes: tuple[str, ...],
           message: str, pause: bool) -> None:  # fmt: skip
    """Create a new image from a container's changes."""
    from minidocker.image.commit import commit_container

    c = ctx.runtime.get(container)
    image_id = commit_container(
        ctx.stores, c, repo_tag=repository, changes=list(changes), author=author, message=message
    )
    click.echo(image_id)


@click.command("diff")
@click.argument("container")
@pass_ctx
def diff(ctx: Context, container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    from minidocker.image.commit import container_changes

    c = ctx.runtime.get(container)
    for kind, path in container_changes(ctx.stores, c):
        click.echo(f"{kind} {path}")


@click.command("build")
@click.argument("path")
@click.option("-f", "--file", "dockerfile", help="Name of the Dockerfile (Default is 'PATH/Dockerfile')")
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag in the 'name:tag' format")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image (accepted)")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success")
@click.option("--target", help="Set the target build stage to build.")
@click.option("--network", default="none", show_default=True, help="Networking mode for the RUN instructions")
@click.option("--rm/--no-rm", default=True, help="Remove intermediate containers (always done)")
@pass_ctx
def build(ctx: Context, path: str, dockerfile: str | None, tags: tuple[str, ...], build_args: tuple[str, ...],
          labels: tuple[str, ...], no_cache: bool, pull: bool, quiet: bool, target: str | None, network: str,
          rm: bool) -> None:  # fmt: skip
    """Build an image from a Dockerfile."""
    import os
    import sys

    from minidocker.build.builder import Builder, BuildOptions
    from minidocker.errors import InvalidInput
    from minidocker.image import reference

    if path.startswith(("http://", "https://", "git@", "github.com/")) or path == "-":
        raise InvalidInput(f"minidocker builds from a local directory only: {path}", subject=path)
    for t in tags:
        reference.parse(t)  # bad tags fail before any step runs, as in docker
    args: dict[str, str] = {}
    for a in build_args:
        k, eq, v = a.partition("=")
        if eq:
            args[k] = v
        elif k in os.environ:
            args[k] = os.environ[k]
    label_map = dict(lbl.partition("=")[::2] for lbl in labels)
    opts = BuildOptions(
        context=path, dockerfile=dockerfile, tags=list(tags), build_args=args, labels=label_map,
        no_cache=no_cache, quiet=quiet, target=target.lower() if target else None, network=network,
    )  # fmt: skip
    Builder(ctx.runtime, opts, sys.stdout).build()


@click.group("builder")
def builder_group() -> None:
    """Manage builds."""


@builder_group.command("prune")
@click.option(
    "-a", "--all", "all_cache", is_flag=True, help="Remove all unused build cache, not just dangling ones"
)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=24h')")
@click.option("--keep-storage", help="Amount of disk space to keep for cache (accepted, not applied)")
@pass_ctx
def builder_prune(ctx: Context, all_cache: bool, force: bool, filters: tuple[str, ...],
                  keep_storage: str | None) -> None:  # fmt: skip
    """Remove build cache: the classic builder's step images nothing else needs (see
    minidocker/image/prune.py)."""
    import sys

    from minidocker.image import prune as pruner
    from minidocker.units import human_size

    parsed = pruner.parse_filters(list(filters), pruner.BUILDER_FILTERS)
    if not force:
        what = "all build cache" if all_cache else "all dangling build cache"
        click.echo(f"WARNING! This will remove {what}. Are you sure you want to continue? [y/N] ", nl=False)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return
    report = pruner.prune_build_cache(ctx.stores, all_cache=all_cache, filters=parsed)
    if report.deleted:
        click.echo("Deleted build cache objects:\n" + "".join(v + "\n" for _, v in report.deleted))
    click.echo(f"Total reclaimed space: {human_size(report.reclaimed, 4)}")
