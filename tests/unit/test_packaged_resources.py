"""What the installed tool reads ships in the package, once: deploy's twins are the same bytes."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from stream.local.resources import install, install_dir, packaged_names, packaged_text

REPO = Path(__file__).resolve().parents[2]
RESOURCES = REPO / "stream" / "local" / "resources"
#: deploy/ keeps these for compose and k8s; the package's copy is what the local stack runs.
DEPLOY_TWINS = {
    "prometheus/prometheus.yml": "deploy/prometheus/prometheus.yml",
    "prometheus/rules/esn-pulse.yml": "deploy/prometheus/rules/esn-pulse.yml",
}


class TestOneCopy:
    @pytest.mark.parametrize("packaged, deployed", sorted(DEPLOY_TWINS.items()))
    def test_deploy_twin_is_identical(self, packaged: str, deployed: str) -> None:
        """A file deploy/ must keep is byte for byte the packaged one (edit both, or neither)."""
        assert (RESOURCES / packaged).read_bytes() == (REPO / deployed).read_bytes(), (
            f"{deployed} and stream/local/resources/{packaged} differ: copy the edited one over"
        )

    def test_every_deploy_rule_file_has_a_packaged_twin(self) -> None:
        """A new rule file in deploy/prometheus/rules is shipped too (the local stack loads it)."""
        deployed = {p.name for p in (REPO / "deploy/prometheus/rules").glob("*.yml")}
        assert deployed == set(packaged_names("prometheus/rules", ".yml"))

    def test_the_kafka_files_live_only_in_the_package(self) -> None:
        """The pom and Log4j config have no copy left in deploy/ to drift from."""
        assert not (REPO / "deploy" / "kafka").exists()
        assert "kafka_2.13" in packaged_text("kafka/pom.xml")
        assert "kafka.logs.file" in packaged_text("kafka/log4j2.properties")


class TestPackageData:
    def test_every_resource_is_declared_as_package_data(self) -> None:
        """Each file under stream/local/resources matches a package-data glob, so wheels hold it."""
        pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
        globs = pyproject["tool"]["setuptools"]["package-data"]["stream.local"]
        files = [p.relative_to(RESOURCES.parent).as_posix() for p in RESOURCES.rglob("*")]
        undeclared = [
            f
            for f in files
            if (RESOURCES.parent / f).is_file() and not any(fnmatch.fnmatch(f, g) for g in globs)
        ]
        assert [] == undeclared

    def test_runtime_imports_are_declared_dependencies(self) -> None:
        """pyyaml is imported at run time (csv --map FILE.yml, local Prometheus): not dev-only."""
        project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
        names = {d.split("=")[0].split(">")[0].split("<")[0].strip().lower() for d in
                 project["dependencies"]}  # fmt: skip
        assert "pyyaml" in names


class TestNoCheckoutPaths:
    def test_no_module_finds_files_relative_to_its_own_location(self) -> None:
        """Files beside the code are read through importlib.resources: a path built from
        ``__file__`` (``parent.parent / "deploy"``) only exists in a checkout."""
        offenders = [
            f"{path.relative_to(REPO)}:{number}"
            for path in sorted((REPO / "stream").rglob("*.py"))
            for number, line in enumerate(path.read_text().splitlines(), start=1)
            if "__file__" in line and not line.lstrip().startswith("#")
        ]
        assert [] == offenders


class TestInstall:
    def test_install_copies_and_rewrites_only_a_changed_file(self, tmp_path: Path) -> None:
        """A copy is made once; a stale one is replaced; an identical one is left untouched."""
        copy = install("kafka/pom.xml", tmp_path)
        assert packaged_text("kafka/pom.xml") == copy.read_text()
        before = copy.stat().st_mtime_ns
        assert copy == install("kafka/pom.xml", tmp_path)
        assert before == copy.stat().st_mtime_ns
        copy.write_text("stale")
        install("kafka/pom.xml", tmp_path)
        assert packaged_text("kafka/pom.xml") == copy.read_text()

    def test_install_dir_removes_a_rule_file_no_longer_shipped(self, tmp_path: Path) -> None:
        """A rule file left from an older version is not loaded by the local Prometheus."""
        (tmp_path / "old.yml").write_text("groups: []\n")
        (tmp_path / "notes.txt").write_text("kept")
        copies = install_dir("prometheus/rules", ".yml", tmp_path)
        assert sorted(p.name for p in tmp_path.glob("*.yml")) == [p.name for p in copies]
        assert (tmp_path / "notes.txt").exists()
