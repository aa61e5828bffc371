"""skyhooks.core and skyhooks import with every framework, client and driver blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import sys
    BLOCKED = set({blocked!r})

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked by the test", name=name)
            return None

    sys.meta_path.insert(0, Block())
    """
)


def run(code: str, blocked: set[str]) -> subprocess.CompletedProcess[str]:
    script = BLOCKER.format(blocked=sorted(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


FRAMEWORKS = {
    "tornado",
    "gevent",
    "twisted",
    "treq",
    "pymongo",
    "geventhttpclient",
    "pycurl",
    "aiohttp",
    "uvicorn",
    "redis",
}


def test_core_imports_and_works_with_no_framework_client_or_driver():
    result = run(
        """
        import skyhooks.core
        from skyhooks.core import open_store, Topic, Signer, generate_secret
        store = open_store("memory://")
        store.add("http://127.0.0.1:1/h", {Topic("a", "1")}, 10)
        assert store.lookup({Topic("a", "1")})
        Signer(generate_secret()).build({"a": 1}, None)
        clients = BLOCKED | {"urllib3", "requests", "httpx"}
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in clients)
        assert not loaded, loaded
        print("ok")
        """,
        FRAMEWORKS | {"urllib3"},
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_top_level_package_and_blocking_publisher_import_without_frameworks():
    result = run(
        """
        import skyhooks
        assert "urllib3" not in sys.modules  # not until the blocking publisher is wanted
        from skyhooks import Publisher, generate_secret
        assert "urllib3" in sys.modules and Publisher.__module__.startswith("skyhooks.blocking")
        Publisher("memory://", generate_secret()).close()
        print("ok")
        """,
        FRAMEWORKS,
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_missing_driver_names_the_extra():
    result = run(
        """
        from skyhooks import open_store, ConfigurationError
        try:
            open_store("mongodb://127.0.0.1/x")
        except ConfigurationError as exc:
            print(exc)
        """,
        {"pymongo"},
    )
    assert "pip install 'skyhooks[mongodb]'" in result.stdout, result.stderr


def test_adapters_name_their_extra_when_the_framework_is_missing():
    for adapter, extra in (("tornado", "tornado"), ("gevent", "gevent"), ("twisted", "twisted")):
        result = run(
            f"""
            try:
                import skyhooks.{adapter}
            except ImportError as exc:
                print(exc)
            """,
            FRAMEWORKS,
        )
        assert f"pip install 'skyhooks[{extra}]'" in result.stdout, (adapter, result.stdout, result.stderr)
