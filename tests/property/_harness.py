"""What every property test asserts about one call of a public function."""

from __future__ import annotations

from typing import Any, Callable

from diffusion_lib.errors import DiffusionLibError


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, DiffusionLibError | None]:
    """Call ``fn``; return ``(result, None)``, or ``(None, error)`` for one of the library's own errors.

    Any other exception (a raw torch ``RuntimeError``, an ``IndexError`` from deep inside, ...)
    propagates and fails the test. A library error must carry a message of at least a few words.
    """
    try:
        return fn(*args, **kwargs), None
    except DiffusionLibError as err:
        message = str(err)
        assert len(message.split()) >= 4, f"{type(err).__name__} with too short a message: {message!r}"
        return None, err


def must_refuse(fn: Callable[..., Any], *args: Any, names: str | None = None, **kwargs: Any) -> DiffusionLibError:
    """Assert that the call raises a library error (whose message mentions ``names``, if given)."""
    result, err = call(fn, *args, **kwargs)
    assert err is not None, f"{getattr(fn, '__qualname__', fn)} accepted bad input and returned {type(result).__name__}"
    if names is not None:
        assert names in str(err), f"the message should name {names!r}: {err}"
    return err
