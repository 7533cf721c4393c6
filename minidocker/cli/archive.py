"""``load``, ``save``, ``import``, ``buildbase`` (the seed's ``buildBase``)."""

from __future__ import annotations

import sys
from typing import BinaryIO

import click

from minidocker.cli.context import Context

pass_ctx = click.make_pass_decorator(Context)


@click.command("load")
@click.option("-i", "--input", "input_path", help="Read from tar archive file, instead of STDIN")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
@pass_ctx
def load(ctx: Context, input_path: str | None, quiet: bool) -> None:
    """Load an image from a tar archive (docker save format, plain or compressed)."""
    from minidocker.archive import dockerarchive
    from minidocker.errors import InvalidInput

    if input_path is None and sys.stdin.isatty():
        raise InvalidInput("requested load from stdin, but stdin is empty")
    try:
        stream: BinaryIO = open(input_path, "rb") if input_path else sys.stdin.buffer  # noqa: SIM115
    except OSError as e:
        raise InvalidInput(f"open {input_path}: {e.strerror.lower() if e.strerror else e}") from None
    with stream:
        lines = dockerarchive.load(ctx.stores, stream, quiet=quiet)
    for line in lines:
        click.echo(line)


@click.command("save")
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", "output", help="Write to a file, instead of STDOUT")
@pass_ctx
def save(ctx: Context, names: tuple[str, ...], output: str | None) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    import os

    from minidocker.archive import dockerarchive
    from minidocker.errors import InvalidInput

    if output is None:
        if sys.stdout.isatty():
            raise InvalidInput("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        dockerarchive.save(ctx.stores, list(names), sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    # Write next to the target and rename, so a failed save never leaves a half archive.
    tmp = f"{output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            dockerarchive.save(ctx.stores, list(names), f)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@click.command("import")
@click.argument("source")
@click.argument("repository", required=False)
@click.option(
    "-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image"
)
@click.option("-m", "--message", default="", help="Set commit message for imported image")
@click.option("--platform", default=None, help="Set platform if server is multi-platform capable")
@pass_ctx
def import_(ctx: Context, source: str, repository: str | None, changes: tuple[str, ...], message: str,
            platform: str | None) -> None:  # fmt: skip
    """Import the contents from a tarball to create a filesystem image."""
    from minidocker.archive.compress import decompress
    from minidocker.errors import InvalidInput
    from minidocker.image import images as svc

    if source.startswith(("http://", "https://")):
        raise InvalidInput(
            f"importing from a URL needs network access, which minidocker does not use: {source}"
        )
    try:
        raw: BinaryIO = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError as e:
        raise InvalidInput(f"open {source}: {e.strerror.lower() if e.strerror else e}") from None
    with raw:
        stream, kind = decompress(raw)
        image_id = svc.import_image(
            ctx.stores, stream, repo_tag=repository, changes=list(changes), message=message,
            eof_empty_segment=kind == "none",
        )  # fmt: skip
    click.echo(image_id)


@click.command("buildbase")
@click.argument("tarball", required=False)
@pass_ctx
def buildbase(ctx: Context, tarball: str | None) -> None:
    """Create the built-in base image.

    With TARBALL (the seed's ``buildBase busybox.tar``), import it as ``base:latest``.
    Without, build ``busybox:latest`` from the host's busybox-static, so a machine with no network
    has an image to run.
    """
    from minidocker.archive.compress import decompress
    from minidocker.image import base
    from minidocker.image import images as svc

    if tarball:
        with open(tarball, "rb") as raw:
            stream, kind = decompress(raw)
            image_id = svc.import_image(
                ctx.stores, stream, repo_tag="base:latest", changes=['CMD ["sh"]'],
                eof_empty_segment=kind == "none",
            )  # fmt: skip
        click.echo(f"base:latest {image_id}")
        return
    image_id = base.build_busybox(ctx.stores)
    click.echo(f"busybox:latest {image_id}")
