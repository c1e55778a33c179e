"""The base of every pipeline's typed parameters (pydantic models, one per ``parameters_*.yml`` section).

Each pipeline annotates its ``params:<section>`` node inputs with its model; Kedro 1.7 reads those
annotations and validates the section before the run starts (kedro.validation.ParameterValidator,
called when the session builds the catalog), so a bad value fails before any node reads or writes
the warehouse. The defaults live in the models; ``conf/base/parameters_*.yml`` shows them to users.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from customer_segmentation.errors import InvalidParametersError


def explain(section: str, error: ValidationError) -> str:
    """One line per problem, each naming the parameter in full (``training.k_min: ...``)."""
    lines = []
    for problem in error.errors(include_url=False):
        name = ".".join([section, *(str(part) for part in problem["loc"])])
        message = str(problem["msg"]).removeprefix("Value error, ").rstrip(".")
        # the cross-field validators write the parameter names themselves
        if problem["type"] == "value_error" and message.startswith(f"{section}."):
            lines.append(message)
            continue
        got = "" if problem["type"] == "missing" else f" (got {problem.get('input')!r})"
        lines.append(f"{name}: {message}{got}")
    return "; ".join(lines) + ". Fix conf/base/parameters*.yml or the --params you passed."


class Parameters(BaseModel):
    """A section of the project's parameters; unknown keys are refused (a typo is not a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The section of parameters.yml this model validates, used to name parameters in errors.
    section: ClassVar[str] = "parameters"

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        """Pydantic's validation, its errors turned into one InvalidParametersError naming each parameter."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise InvalidParametersError(explain(cls.section, exc)) from None

    @classmethod
    def of(cls, values: Any = None, **changes: Any) -> Any:
        """A validated instance from a mapping (or an instance), with ``changes`` applied on top."""
        if isinstance(values, cls) and not changes:
            return values  # already validated, and frozen: nothing to redo
        if isinstance(values, cls):
            values = values.model_dump()
        return cls.model_validate({**dict(values or {}), **changes})
