"""The CLI through its real entry point, ``python -m cellhub_client`` (and the ``cellhub``
script pip installs), in a process whose path holds the installed wheel and nothing of this
repository: projects, jobs, export with progress bars, download, cancel, the token from the
environment or a config file, the documented exit codes, and Ctrl+C."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.client.conftest import Hub, client_env, leftovers, sha256_of


def cli(site: Path, cwd: Path, *args: str, token: str | None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cellhub_client", *args], cwd=cwd, env=client_env(site, token, **env),
                          capture_output=True, text=True, timeout=120)


def test_the_installed_client_needs_nothing_of_this_repository(client_site, tmp_path):
    probe = ("import importlib.util as u, cellhub_client.shared.models as m; "
             "print([u.find_spec(name) is None for name in ('server', 'app', 'tests')], m.__file__)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=client_env(client_site, None),
                         capture_output=True, text=True, check=True)
    models_file = out.stdout.split()[-1]
    assert out.stdout.startswith("[True, True, True]")
    assert Path(models_file).is_relative_to(client_site)


def test_export_with_progress_bars_then_jobs_download_and_cancel(client_site, hub: Hub, tmp_path):
    hub.hooks(delay_per_checkpoint_ms=20)
    done = cli(client_site, tmp_path, "export", "--url", hub.url, "--project", str(hub.project_id),
               "--annotations", "coco,yolo", "--metrics", "csv", "--images", "--overlays", "--pixel-size-um", "0.5",
               "-o", "out.zip", "--progress", token=hub.token)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Saved out.zip (") and "files verified" in done.stdout
    assert "export:" in done.stderr and "100%" in done.stderr and "download:" in done.stderr
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        names = archive.namelist()
    assert {"annotations/coco/annotations.json", "yolo/data.yaml", "metrics/metrics.csv"} <= set(names)
    assert any(n.startswith("yolo/images/") for n in names) and any(n.startswith("visualizations/") for n in names)
    job_id = hub.history()[0]["id"]
    assert sha256_of(tmp_path / "out.zip") == hub.job_state(job_id)["sha256"]

    jobs = cli(client_site, tmp_path, "jobs", "--url", hub.url, "--project", str(hub.project_id), token=hub.token)
    assert jobs.returncode == 0 and job_id in jobs.stdout and "completed" in jobs.stdout and "yes" in jobs.stdout
    again = cli(client_site, tmp_path, "download", job_id, "--url", hub.url, "-o", "again.zip", token=hub.token)
    assert again.returncode == 0 and (tmp_path / "again.zip").read_bytes() == (tmp_path / "out.zip").read_bytes()
    late = cli(client_site, tmp_path, "cancel", job_id, "--url", hub.url, token=hub.token)
    assert late.returncode == 6 and "already downloaded" in late.stderr
    projects = cli(client_site, tmp_path, "projects", "--url", hub.url, token=hub.token)
    assert projects.returncode == 0 and projects.stdout.splitlines()[0].split() == ["ID", "IMAGES", "NAME"]


def test_the_token_comes_from_the_environment_or_a_config_file_never_argv(client_site, hub: Hub, tmp_path):
    config = tmp_path / "cellhub.toml"
    config.write_text(f'url = "{hub.url}"\ntoken = "{hub.token}"\n')
    config.chmod(0o600)
    from_file = cli(client_site, tmp_path, "projects", "--config", str(config), "--json", token=None)
    assert from_file.returncode == 0, from_file.stderr
    assert "warning" not in from_file.stderr
    config.chmod(0o644)
    shared = cli(client_site, tmp_path, "projects", "--json", token=None, CELLHUB_CONFIG=str(config))
    assert shared.returncode == 0 and "chmod 600" in shared.stderr
    missing = cli(client_site, tmp_path, "projects", "--url", hub.url, token=None)
    assert missing.returncode == 3 and "CELLHUB_TOKEN" in missing.stderr
    bad = cli(client_site, tmp_path, "projects", "--url", hub.url, token="chub_" + "1" * 43)
    assert bad.returncode == 3 and "unknown API token" in bad.stderr
    assert cli(client_site, tmp_path, "projects", "--url", hub.url, "--token", hub.token, token=None).returncode == 2


def test_exit_codes_for_bad_input_unknown_things_and_no_hub(client_site, hub: Hub, tmp_path):
    bad = cli(client_site, tmp_path, "export", "--url", hub.url, "--project", str(hub.project_id),
              "--annotations", "xml", "-o", "x.zip", token=hub.token)
    assert bad.returncode == 2 and "annotation_formats.0" in bad.stderr
    unknown = cli(client_site, tmp_path, "download", "nosuchjob", "--url", hub.url, "-o", "x.zip", token=hub.token)
    assert unknown.returncode == 4 and "no such export" in unknown.stderr
    nowhere = cli(client_site, tmp_path, "projects", "--url", "http://127.0.0.1:9", "--retry-for", "1",
                  token=hub.token)
    assert nowhere.returncode == 8, nowhere.stderr
    assert leftovers(tmp_path) == []


def test_the_cellhub_script_runs_the_same_cli(client_site, tmp_path):
    out = subprocess.run([str(client_site / "bin" / "cellhub"), "--version"], cwd=tmp_path,
                         env=client_env(client_site, None), capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "cellhub-client 0.1.0"


def test_ctrl_c_in_the_terminal_cancels_the_export_and_exits_130(client_site, hub: Hub, tmp_path):
    hub.hooks(hold_before_complete=True)
    process = subprocess.Popen([sys.executable, "-m", "cellhub_client", "export", "--url", hub.url, "--project",
                                str(hub.project_id), "-o", "out.zip"], cwd=tmp_path,
                               env=client_env(client_site, hub.token), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 60
        while not (hub.history() and hub.history()[0]["status"] == "running"):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)  # the client now waits on the job's events
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "cancelled on the server" in err
    assert hub.history()[0]["status"] == "cancelled" and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", [["export", "--project", "1", "-o", "x.zip"], ["download", "j", "-o", "x.zip"]])
def test_no_url_is_a_usage_error(client_site, tmp_path, command):
    out = cli(client_site, tmp_path, *command, token="chub_x")
    assert out.returncode == 2 and "--url" in out.stderr


def test_a_checkout_without_a_built_wheel_finds_the_shared_modules_in_app(tmp_path):
    root = Path(__file__).resolve().parents[2]
    probe = "import cellhub_client.shared.models as m; print(m.__file__)"
    env = client_env(root / "client", None)
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True)
    assert Path(out.stdout.strip()) == root / "app" / "models.py"
