"""Typed options of components (watcher kinds, drift detectors, bias tests, signals), and how a
bad one is reported.

Every kind of component declares one pydantic model of its options (`Options`: unknown keys
are refused, defaults are the component's own), and the config validates each entry against
its kind's model when it loads, so a misspelt or ill-typed option stops the start with the
component's name and the field instead of being ignored. The models are plain pydantic, free
of numpy, torch and the rest: the config imports them, so they cost nothing at start.

Errors that belong to one named component are raised as `COMPONENT_ERROR` line errors whose
context carries the component's name and the field's path below it; the config prints them
as `watch.watchers[2] (toxic): options.max_btach: Extra inputs are not permitted`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

COMPONENT_ERROR = "component_option"
Opts = TypeVar("Opts", bound="Options")
Loc = tuple[str | int, ...]


class Options(BaseModel):
    """Base of every options model: unknown keys fail, values are fixed once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def path(loc: Iterable[str | int]) -> str:
    """`signals[2].params.bins` from ("signals", 2, "params", "bins")."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def component_error(component: str, loc: Loc, message: str, input_value: Any = None, *,
                    field: str | None = None, depth: int | None = None) -> InitErrorDetails:
    """One line error about `component`; `loc` is the field's path below the component (the
    part printed after its name; or its last `depth` parts), `field` how to print it when not
    as `path` prints that part."""
    depth = len(loc) if depth is None else depth
    below = loc[len(loc) - depth:]
    ctx = {"component": component, "field": path(below) if field is None else field,
           "depth": depth, "reason": message}
    return InitErrorDetails(type=PydanticCustomError(COMPONENT_ERROR, "{reason}", ctx),
                            loc=loc, input=input_value)


def renamed(error: ValidationError, component: str, prefix: Loc = (),
            shown: str | None = None, at: Loc = ()) -> list[InitErrorDetails]:
    """The errors of `error` as errors of `component`, their fields under `prefix` (printed as
    `shown`, default `path(prefix)`), the component itself at `at` (relative to where the
    errors are raised). An error about a component inside this one (a signal of a job) keeps
    that component's name in the field: `signals[2] (latency_ms).params.bins`."""
    out: list[InitErrorDetails] = []
    head = path(prefix) if shown is None else shown
    for item in error.errors(include_url=False):
        field_loc: Loc = (*prefix, *item["loc"])
        loc: Loc = (*at, *field_loc)
        if item["type"] == COMPONENT_ERROR:
            ctx = item.get("ctx") or {}
            depth = int(ctx.get("depth", 0))
            inner_place = item["loc"][:len(item["loc"]) - depth]
            below = str(ctx.get("field") or "")
            if ctx.get("component") != component or inner_place:
                place = ".".join(p for p in (head, path(inner_place)) if p)
                below = f"{place} ({ctx.get('component')})" + (f".{below}" if below else "")
            elif head:
                below = f"{head}.{below}" if below else head
            out.append(component_error(component, loc, item["msg"], item.get("input"),
                                       field=below, depth=len(field_loc)))
            continue
        below = path(item["loc"])
        field = f"{head}.{below}" if head and below else head or below
        out.append(component_error(component, loc, item["msg"], item.get("input"), field=field,
                                   depth=len(field_loc)))
    return out


def check(model: type[Opts], raw: Mapping[str, Any] | None, component: str,
          prefix: Loc = ("options",), at: Loc = ()
          ) -> tuple[Opts | None, list[InitErrorDetails]]:
    """`raw` validated against `model`: (the options, []) or (None, the errors about
    `component` (found at `at`), under its field `prefix`)."""
    try:
        return model.model_validate(dict(raw or {})), []
    except ValidationError as exc:
        return None, renamed(exc, component, prefix, at=at)


def as_error(title: str, errors: list[InitErrorDetails]) -> ValidationError:
    """The errors as one ValidationError: raised in a validator, pydantic nests its errors
    where the validator runs."""
    return ValidationError.from_exception_data(title, errors)


def raise_errors(title: str, errors: list[InitErrorDetails]) -> None:
    """Raise the errors, if any, as one ValidationError (`as_error`)."""
    if errors:
        raise as_error(title, errors)


def describe(item: Mapping[str, Any]) -> str | None:
    """`where (component): field: reason` for a component's error (None for other errors);
    `where` is the component's own place in the config."""
    if item.get("type") != COMPONENT_ERROR:
        return None
    ctx = item.get("ctx") or {}
    loc = tuple(item.get("loc") or ())
    depth = int(ctx.get("depth", 0))
    where = path(loc[:len(loc) - depth]) or "config"
    field = str(ctx.get("field") or "")
    return f"{where} ({ctx.get('component')}): {field + ': ' if field else ''}{item['msg']}"


def one_line(error: ValidationError, prefix: str = "options") -> str:
    """A ValidationError of an options model as one line (`options.max_batch: reason; ...`),
    for errors raised outside the config (a watcher built directly)."""
    parts = []
    for item in error.errors(include_url=False):
        below = path(item["loc"])
        parts.append(f"{prefix}.{below}: {item['msg']}" if below else f"{prefix}: {item['msg']}")
    return "; ".join(parts)
