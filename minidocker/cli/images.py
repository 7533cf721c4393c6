"""``images``, ``image …``, ``tag``, ``rmi``, ``history``, ``inspect``, ``fsck``."""

from __future__ import annotations

import click

from minidocker.cli.context import Context
from minidocker.cli.output import ellipsis, print_formatted, table
from minidocker.units import human_size

pass_ctx = click.make_pass_decorator(Context)


@click.command("images")
@click.argument("repository", required=False)
@click.option(
    "-a", "--all", "all_images", is_flag=True, help="Show all images (default hides intermediate images)"
)
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("--digests", is_flag=True, help="Show digests")
@click.option("--format", "fmt", help="Pretty-print images using a Go template")
@pass_ctx
def images(ctx: Context, repository: str | None, all_images: bool, quiet: bool, no_trunc: bool,
           digests: bool, fmt: str | None) -> None:  # fmt: skip
    """List images."""
    from minidocker.image import images as svc

    rows = svc.list_images(ctx.stores, all_images=all_images)
    if repository:
        name, _, tag = repository.partition(":")
        rows = [r for r in rows if r.repository == name and (not tag or r.tag == tag)]

    def show_id(image_id: str) -> str:
        return image_id if no_trunc else svc.short_id(image_id)

    if quiet:
        seen: list[str] = []
        for r in rows:
            if show_id(r.image_id) not in seen:
                seen.append(show_id(r.image_id))
        click.echo("\n".join(seen)) if seen else None
        return
    items = [
        {
            "Repository": r.repository,
            "Tag": r.tag,
            "Digest": r.digest,
            "ID": show_id(r.image_id),
            "CreatedSince": svc.created_ago(r.created),
            "CreatedAt": r.created,
            "Size": human_size(r.size),
        }
        for r in rows
    ]

    def default() -> None:
        cols = ["Repository", "Tag", *(["Digest"] if digests else []), "ID", "CreatedSince", "Size"]
        heads = ["REPOSITORY", "TAG", *(["DIGEST"] if digests else []), "IMAGE ID", "CREATED", "SIZE"]
        click.echo(table(heads, [[i[c] for c in cols] for i in items]))

    print_formatted(fmt, ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "CREATED AT", "SIZE"],
                    ["Repository", "Tag", "Digest", "ID", "CreatedSince", "CreatedAt", "Size"], items, default)  # fmt: skip


@click.command("tag")
@click.argument("source")
@click.argument("target")
@pass_ctx
def tag(ctx: Context, source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    from minidocker.image import images as svc

    svc.tag(ctx.stores, source, target)


@click.command("rmi")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@pass_ctx
def rmi(ctx: Context, names: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove one or more images."""
    from minidocker.errors import MinidockerError
    from minidocker.image import images as svc

    failed: MinidockerError | None = None
    for name in names:
        try:
            for line in svc.remove_image(ctx.stores, name, force=force, prune=not no_prune):
                click.echo(line)
        except MinidockerError as e:
            # Docker goes on with the other names and reports each failure.
            click.echo(f"Error: {e}", err=True)
            failed = e
    if failed is not None:
        raise SystemExit(1)


@click.command("history")
@click.argument("name")
@click.option("-H", "--human", default=True, help="Print sizes and dates in human readable format")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("--format", "fmt", help="Pretty-print history using a Go template")
@pass_ctx
def history(ctx: Context, name: str, human: bool, no_trunc: bool, quiet: bool, fmt: str | None) -> None:
    """Show the history of an image."""
    from minidocker.image import images as svc

    rows = svc.history(ctx.stores, name)

    def show_id(i: str) -> str:
        return i if no_trunc or i == "<missing>" else svc.short_id(i)

    if quiet:
        click.echo("\n".join(show_id(r.image_id) for r in rows))
        return
    items = []
    for r in rows:
        created_by = r.created_by.replace("\t", " ")
        items.append(
            {
                "ID": show_id(r.image_id),
                "CreatedSince": svc.created_ago(r.created) if human else r.created,
                "CreatedAt": r.created,
                "CreatedBy": created_by if no_trunc else ellipsis(created_by, 45),
                "Size": human_size(r.size) if human else str(r.size),
                "Comment": r.comment,
            }
        )
    keys = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
    heads = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]

    def default() -> None:
        click.echo(table(heads, [[i[k] for k in keys] for i in items]))

    print_formatted(fmt, heads, keys, items, default)


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using the given Go template")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container")
@click.option(
    "--type", "kind", type=click.Choice(["container", "image"]), help="Return JSON for specified type"
)
@pass_ctx
def inspect(ctx: Context, names: tuple[str, ...], fmt: str | None, size: bool, kind: str | None) -> None:
    """Return low-level information on Docker objects."""
    from minidocker.cli.containers import run_inspect

    # `image inspect` is this command too: there only images count
    parent = click.get_current_context().parent
    if parent is not None and parent.command.name == "image":
        kind = "image"
    run_inspect(ctx, names, fmt, kind, size)


@click.command("fsck")
@click.option("--repair", is_flag=True, help="Remove orphans and half-written entries")
@pass_ctx
def fsck(ctx: Context, repair: bool) -> None:
    """Check the data root's invariants (chain IDs, diff IDs via tar-split, orphans)."""
    from minidocker.image import fsck as checker

    report = checker.check(ctx.stores, repair=repair)
    for line in report.lines():
        click.echo(line)
    if report.problems and not repair:
        raise SystemExit(1)


@click.group("image")
def image_group() -> None:
    """Manage images."""


# `image ls/list/inspect/rm/tag/history/load/save/import` reuse the top-level commands.
image_group.add_command(images, "ls")
image_group.add_command(images, "list")
image_group.add_command(inspect, "inspect")
image_group.add_command(rmi, "rm")
image_group.add_command(tag, "tag")
image_group.add_command(history, "history")


def _add_archive_commands() -> None:
    from minidocker.cli.archive import import_, load, save

    image_group.add_command(load, "load")
    image_group.add_command(save, "save")
    image_group.add_command(import_, "import")


_add_archive_commands()


@image_group.command("prune")
@click.option(
    "-a", "--all", "all_images", is_flag=True, help="Remove all unused images, not just dangling ones"
)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>')")
@pass_ctx
def image_prune(ctx: Context, all_images: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused images."""
    import sys

    from minidocker.image import prune as pruner

    parsed = pruner.parse_filters(list(filters))
    if not force:
        what = (
            "all images without at least one container associated to them"
            if all_images
            else "all dangling images"
        )
        click.echo(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ", nl=False)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            click.echo("Total reclaimed space: 0B")
            return
    report = pruner.prune_images(ctx.stores, all_images=all_images, filters=parsed)
    if report.deleted:
        click.echo("Deleted Images:\n" + "".join(line + "\n" for line in report.lines()))
    click.echo(f"Total reclaimed space: {human_size(report.reclaimed, 4)}")
