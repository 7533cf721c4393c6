"""``pull``, ``push``, ``login``, ``logout`` (chapter 5, minidocker/registry)."""

from __future__ import annotations

import sys

import click

from minidocker.cli.context import Context

pass_ctx = click.make_pass_decorator(Context)


def _say(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


@click.command("pull")
@click.argument("name")
@click.option("--platform", default=None, help="Set platform if server is multi-platform capable")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@click.option("--max-concurrent-downloads", default=3, show_default=True, type=click.IntRange(1, 32),
              help="Parallel blob downloads")  # fmt: skip
@pass_ctx
def pull(ctx: Context, name: str, platform: str | None, quiet: bool, max_concurrent_downloads: int) -> None:
    """Pull an image from a registry."""
    from minidocker.image import reference
    from minidocker.registry import manifest
    from minidocker.registry.pull import pull as do_pull

    plat = manifest.parse_platform(platform) if platform else None
    # Docker's bars when stdout is a terminal (cursor movement), plain status lines otherwise
    tty = sys.stdout if not quiet and sys.stdout.isatty() else None
    do_pull(ctx.stores, name, platform=plat, out=(lambda _l: None) if quiet else _say,
            max_concurrent=max_concurrent_downloads, terminal=tty)  # fmt: skip
    click.echo(str(reference.parse(name).with_default_tag()))


@click.command("push")
@click.argument("name")
@click.option("-a", "--all-tags", is_flag=True, help="Push all tagged images in the repository")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@pass_ctx
def push(ctx: Context, name: str, all_tags: bool, quiet: bool) -> None:
    """Push an image to a registry."""
    from minidocker.registry.push import push as do_push

    do_push(ctx.stores, name, all_tags=all_tags, out=(lambda _l: None) if quiet else _say)


@click.command("login")
@click.argument("server", required=False)
@click.option("-u", "--username", default=None, help="Username")
@click.option("-p", "--password", default=None, help="Password")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin")
def login(server: str | None, username: str | None, password: str | None, password_stdin: bool) -> None:
    """Log in to a registry (credentials go to ~/.minidocker/config.json, mode 0600)."""
    from minidocker.errors import InvalidInput
    from minidocker.registry import auth
    from minidocker.registry.client import Registry

    domain = server or "docker.io"
    for prefix in ("https://", "http://"):
        domain = domain.removeprefix(prefix)
    domain = domain.rstrip("/")
    if password_stdin:
        if password is not None:
            raise InvalidInput("--password and --password-stdin are mutually exclusive")
        if username is None:
            raise InvalidInput("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    if username is None:
        username = click.prompt("Username")
    if password is None:
        password = click.prompt("Password", hide_input=True)
    if not password_stdin and "--password" in sys.argv[1:] or "-p" in sys.argv[1:]:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    creds = auth.Credentials(username, password)
    Registry(domain, creds).check_login()
    path = auth.store_credentials(domain, creds)
    click.echo(f"WARNING! Your password will be stored unencrypted in {path}.", err=True)
    click.echo("Login Succeeded")


@click.command("logout")
@click.argument("server", required=False)
def logout(server: str | None) -> None:
    """Log out from a registry."""
    from minidocker.registry import auth

    domain = (server or "docker.io").removeprefix("https://").removeprefix("http://").rstrip("/")
    if auth.remove_credentials(domain):
        click.echo(f"Removing login credentials for {auth.server_key(domain)}")
    else:
        click.echo(f"Not logged in to {auth.server_key(domain)}")
