"""The dependencies: declared ranges that hold, and the private internals zoomreel uses.

Where no supported extension point does the job, zoomreel uses a dependency's private
internals. Each is fenced: pyproject.toml bounds the dependency below its next release,
and a check here names the internal and the file that relies on it, so raising the bound
(``tox -e lock``, then ``tox``) says at once what to look at.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import tomllib
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def _resolve(dotted: str) -> Any:
    """The object at ``package.module:Attribute.attribute``."""
    module_name, _, attributes = dotted.partition(":")
    obj: Any = import_module(module_name)
    for name in filter(None, attributes.split(".")):
        obj = getattr(obj, name)
    return obj


def _parameters(*names: str) -> Callable[[Any], None]:
    def check(obj: Any) -> None:
        have = list(inspect.signature(obj).parameters)
        missing = [name for name in names if name not in have]
        assert not missing, f"its parameters are {have}; {missing} are gone"
    return check


def _source_has(*fragments: str) -> Callable[[Any], None]:
    def check(obj: Any) -> None:
        source = inspect.getsource(obj)
        missing = [fragment for fragment in fragments if fragment not in source]
        assert not missing, f"its source no longer has {missing}"
    return check


def _exists(obj: Any) -> None:
    """Resolving the name is the check."""


#: (the internal, the file of ours that relies on it, what it must still do)
INTERNALS: list[tuple[str, str, Callable[[Any], None]]] = [
    # Dramatiq: no hook for the consumer thread's class, so SteadyWorker overrides
    # _add_consumer with Dramatiq's own body and SteadyConsumer's class.
    ("dramatiq.worker:Worker._add_consumer", "engine/jobs/consumers.py",
     _source_has("self.consumers[queue_name]", "consumer_whitelist", "q_name(",
                 "delay_prefetch", "queue_prefetch", "work_queue", "worker_timeout",
                 "ConsumerThread(", ".start()")),
    ("dramatiq.worker:ConsumerThread.__init__", "engine/jobs/consumers.py",
     _parameters("broker", "queue_name", "prefetch", "work_queue", "worker_timeout")),
    ("dramatiq.worker:ConsumerThread.close", "engine/jobs/consumers.py",
     _source_has("self.delay_queue", "self.requeue_messages(", "self.consumer")),
    ("dramatiq.worker:ConsumerThread.requeue_messages", "engine/jobs/consumers.py", _exists),
    ("dramatiq.common:q_name", "engine/jobs/consumers.py", _exists),
    # Waitress: no hooks for its own answers or its connections, so its channel is given
    # subclasses of the parser and error task, and a guard around the channel.
    ("waitress.channel:HTTPChannel", "frontends/_waitress.py",
     _source_has("parser_class = HTTPRequestParser", "error_task_class = ErrorTask",
                 "self.parser_class(", "self.error_task_class(")),
    ("waitress.channel:HTTPChannel", "frontends/_connections.py",
     _source_has("def received(", "def readable(", "self.will_close", "self.requests",
                 "self.request", "total_outbufs_len")),
    ("waitress.wasyncore:dispatcher.del_channel", "frontends/_connections.py",
     _parameters("map")),
    ("waitress.server:BaseWSGIServer", "frontends/_waitress.py",
     _source_has("channel_class = HTTPChannel", "self.channel_class(")),
    ("waitress.parser:HTTPRequestParser", "frontends/_waitress.py",
     _source_has("def parse_header(", "self.chunked", "self.headers",
                 "headers_finished", "raise TransferEncodingNotImplemented")),
    ("waitress.parser:ParsingError", "frontends/_waitress.py", _exists),
    ("waitress.task:ErrorTask.execute", "frontends/_waitress.py",
     _source_has("self.request.error", "self.status", "self.response_headers",
                 "self.set_close_on_finish()", "self.content_length", "self.write(")),
    # Numba: the kernel's vector intrinsics are built with numba.core's code generation
    # helpers, and PERMUTES reads the CPU Numba compiles for from its configuration.
    ("numba.core.codegen:get_host_cpu_features", "engine/kernel.py", _parameters()),
    ("numba.core.config:CPU_FEATURES", "engine/kernel.py", _exists),
    ("numba.core.cgutils:get_item_pointer", "engine/kernel.py",
     _parameters("context", "builder", "aryty", "ary", "inds")),
    ("numba.core.cgutils:get_or_insert_function", "engine/kernel.py",
     _parameters("module", "fnty", "name")),
    ("numba.core.types:Array", "engine/kernel.py", _exists),
    ("numba.extending:models.PrimitiveModel", "engine/kernel.py",
     _parameters("dmm", "fe_type", "be_type")),
]


@pytest.mark.parametrize(("internal", "user", "check"), INTERNALS,
                         ids=[f"{internal} ({user})" for internal, user, _ in INTERNALS])
def test_a_private_internal_zoomreel_relies_on_is_still_there(
        internal: str, user: str, check: Callable[[Any], None]) -> None:
    package = internal.split(".")[0]
    version = importlib.metadata.version(package)
    try:
        check(_resolve(internal))
    except (AttributeError, ImportError, AssertionError, TypeError, ValueError) as exc:
        pytest.fail(f"{package} {version} changed {internal}, which {user} relies on: "
                    f"{exc}. Adapt {user}, or keep {package} below {version} in "
                    "pyproject.toml.", pytrace=False)


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    return [Requirement(text) for text in declared]


def _pinned(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if match:
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def test_every_lower_bound_declared_is_the_version_tox_e_lowest_tests() -> None:
    # "Lowest" is the first release the bound admits: >=6.2 is tested with 6.2.805324.
    lowest = _pinned(ROOT / "constraints" / "lowest.txt")
    untested = []
    for requirement in _requirements():
        bounds = [Version(spec.version) for spec in requirement.specifier
                  if spec.operator == ">="]
        assert bounds, f"pyproject.toml: {requirement} declares no lower bound"
        tested = Version(lowest[requirement.name.lower()])
        if tested.release[:len(bounds[0].release)] != bounds[0].release:
            untested.append(f"{requirement.name}: declared >={bounds[0]}, tested {tested}")
    assert not untested, ("constraints/lowest.txt does not test the lower bounds of "
                          f"pyproject.toml ({untested}): run `tox -e lock`, or raise them")


def test_the_tested_versions_are_ones_pyproject_allows() -> None:
    for name, path in (("tested", "tested.txt"), ("lowest", "lowest.txt")):
        pins = _pinned(ROOT / "constraints" / path)
        for requirement in _requirements():
            version = pins.get(requirement.name.lower())
            assert version is not None, f"constraints/{path} lacks {requirement.name}"
            assert requirement.specifier.contains(version, prereleases=True), (
                f"constraints/{path} ({name}) pins {requirement.name}=={version}, "
                f"outside pyproject.toml's {requirement}: run `tox -e lock`")
