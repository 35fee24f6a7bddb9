"""The bounded textual workspace and its distillation operators.

Pure code with no I/O: token counts come from an injected counter, so the
bound is in the engine's own tokens. The operators arrive with the
strategies issue; the counter's type is fixed here because the engine
protocol already provides it (``Engine.count_tokens``).
"""

from collections.abc import Awaitable, Callable

#: Counts ``text`` in the engine's own tokenizer.
TokenCounter = Callable[[str], Awaitable[int]]

__all__ = ["TokenCounter"]
