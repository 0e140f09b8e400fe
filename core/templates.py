"""The Jinja2 environment every generated page (report, monitor, digest) renders with: templates from
the package's `templates/` folder, HTML escaped, an unknown name an error rather than an empty cell."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def page_templates(package: str) -> Environment:
    return Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
