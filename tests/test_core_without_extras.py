"""The core install runs without the optional extras: the CLI's training commands must not import
FastAPI, datasets, matplotlib ... at start-up (a GPU image without FastAPI once failed every
`tasktune` command because the CLI imported the server package)."""

import subprocess
import sys

EXTRAS = ("fastapi", "uvicorn", "datasets", "matplotlib", "mwparserfromhell", "sacrebleu", "rouge_score", "peft",
          "psutil", "openai", "httpx")


def test_cli_starts_without_the_optional_extras():
    code = ("import sys\n"
            f"for m in {EXTRAS!r}: sys.modules[m] = None\n"
            "sys.argv = ['tasktune', 'train', '--help']\n"
            "from tasktune.cli.launch import main\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"TASKTUNE_MALLOC": "system", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-800:]
    assert "--data" in done.stdout
