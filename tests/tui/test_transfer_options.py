"""The new-transfer form's Advanced section over the real engine and the sshd lab: a
``--parallel 2`` copy and an encrypted copy land what they should, the plan preview lists the
options, and a bad value is an error on its own field.
"""

from __future__ import annotations

from textual.widgets import Checkbox, Select, Static

from difpipe_tui.core.store import Store
from difpipe_tui.core.transfer.codecs import COMPRESS_CHOICES
from difpipe_tui.core.transfer.encrypt import decrypt_file, generate_key
from difpipe_tui.screens.transfer_options import AdvancedOptions
from tests.tui.helpers import random_file, wait_until
from tests.tui.transfer_steps import advanced, fill, open_form, pick, start, wait_state

SIZE = (120, 40)
MiB = 1024 * 1024


async def test_parallel_two_lands_a_byte_identical_file(lab_app, lab_home, dirs):
    src = random_file(dirs["edge"] / "ranges.bin", 5 * MiB + 3)
    async with lab_app.run_test(size=SIZE, notifications=True) as pilot:
        form = await open_form(pilot)
        await fill(pilot, source=("edge", str(src)), destinations=[("cloud", f"{dirs['cloud']}/")])
        await advanced(pilot, parallel="2", checkpoint="8M")
        await pilot.press("ctrl+r")
        plan = form.query_one("#plan", Static)
        await wait_until(lambda: "strategy" in str(plan.render()), timeout=30)
        text = str(plan.render())
        assert "--parallel 2" in text
        assert "\nparallel      2 byte ranges" in text and "\ncheckpoint    every 8.0 MiB" in text
        transfer_id = await start(pilot)
        await wait_state(pilot.app, transfer_id, "DONE")
    with Store.open(lab_home / "state" / "state.db") as store:
        spec = store.get_transfer(transfer_id).spec
    assert spec["parallel"] == 2 and spec["checkpoint_interval"] == 8 * MiB
    assert (dirs["cloud"] / "ranges.bin").read_bytes() == src.read_bytes()


async def test_an_encrypted_copy_lands_ciphertext_the_key_decrypts(lab_app, dirs, tmp_path):
    src = random_file(dirs["edge"] / "secret.bin", 2 * MiB + 5)
    key_file = tmp_path / "copy.key"
    key = generate_key(key_file)
    async with lab_app.run_test(size=SIZE, notifications=True) as pilot:
        form = await open_form(pilot)
        await fill(pilot, source=("edge", str(src)), destinations=[("cloud", f"{dirs['cloud']}/")])
        await advanced(pilot, encrypt=str(key_file))
        await pilot.press("ctrl+r")
        plan = form.query_one("#plan", Static)
        await wait_until(lambda: "strategy" in str(plan.render()), timeout=30)
        assert f"\nencrypt       AES-256-GCM, key {key_file}" in str(plan.render())
        transfer_id = await start(pilot)
        await wait_state(pilot.app, transfer_id, "DONE")
    landed = dirs["cloud"] / "secret.bin"
    assert landed.read_bytes() != src.read_bytes()
    assert src.read_bytes() not in landed.read_bytes()
    decrypt_file(str(landed), str(tmp_path / "plain.bin"), key)
    assert (tmp_path / "plain.bin").read_bytes() == src.read_bytes()


async def test_bad_advanced_values_show_on_their_fields(seeded_app, tmp_path):
    async with seeded_app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        form.ends()[0].fill("local", "/srv/a")
        form.ends()[1].fill("local", "/srv/b")
        await pick(pilot, form.query_one("#compress", Select), list(COMPRESS_CHOICES), "zstd")
        await advanced(
            pilot,
            level="99",
            parallel="0",
            checkpoint="10K",
            retries="101",
            buffer="10K",
            stall="-5",
            encrypt=str(tmp_path / "no.key"),
        )
        form.query_one("#advanced").collapsed = True
        await pilot.press("ctrl+s")
        await pilot.pause()

        def error(field: str) -> str:
            return str(form.query_one(f"#{field}-error").render())

        assert error("level") == "Level: zstd takes 1..19, got 99"
        assert error("parallel") == "Parallel: expected 1..16, got 0"
        assert error("checkpoint") == "Checkpoint every: at least 1M"
        assert error("retries") == "Retries: expected 0..100, got 101"
        assert error("buffer") == "Buffer: at least 1M"
        assert error("stall").startswith("Stall after: expected 0..")
        assert error("stall").endswith("got -5")
        missing = tmp_path / "no.key"
        assert error("encrypt") == f"Encrypt key: {missing}: cannot read the key file: " + (
            "No such file or directory"
        )
        assert not form.query_one("#advanced").collapsed  # opened to show its errors
        assert pilot.app.screen is form
        await advanced(
            pilot,
            level="x",
            parallel="2",
            checkpoint="8M",
            retries="0",
            buffer="4M",
            stall="2.5s",
            encrypt="",
        )
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert error("level") == 'Level: expected a whole number, got "x"'
        assert not error("parallel") and not error("checkpoint") and not error("encrypt")
        assert not error("retries") and not error("buffer") and not error("stall")
        form.query_one("#overwrite", Checkbox).value = False
        form.query_one("#fail-fast", Checkbox).value = True
        data, errors = form.query_one(AdvancedOptions).read("zstd")
        assert errors == {"level": 'Level: expected a whole number, got "x"'}
        fields = ("retries", "buffer", "stall_timeout", "overwrite", "fail_fast")
        assert {k: data[k] for k in fields} == {
            "retries": 0,
            "buffer": 4 * 1024 * 1024,
            "stall_timeout": 2.5,
            "overwrite": False,
            "fail_fast": True,
        }
