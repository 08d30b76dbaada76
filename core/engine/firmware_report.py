"""The report of a firmware export (`core.engine.export`): the size table (NAS estimate, zig ELF, gcc ELF),
the checks made, per-layer checksums of the integer reference, Unicorn and QEMU, and the exported README.
"""

from __future__ import annotations

import subprocess
from string import Template
from typing import Any

from core.engine.export import FIRMWARE_DIR, STACK_BYTES, Board, parse_uart
from core.io import markdown_table

KERNEL_TEXT = {
    "own": "the SparseEngine's own (model/se_*.c)",
    "cmsis-nn": ("CMSIS-NN for conv, depthwise, fully connected and attention matmul layers (its sources in "
                 "third_party/CMSIS-NN, Apache-2.0; model/se_cmsis.c adapts the calls), the SparseEngine's "
                 "kernels for the other ops"),
}


def _mismatch(what: str, names: list[str], got: list[int], want: list[int]) -> str | None:
    bad = [n for n, g, w in zip(names, got, want, strict=False) if g != w]
    if len(got) != len(want):
        return f"{what} reported {len(got)} layers, the model has {len(want)}"
    return f"{what} differs from the integer reference in layers {', '.join(bad[:5])}" if bad else None


def build_report(cid: int, row: dict[str, Any], b: Board, sparse: str, kernels: str, program: Any,
            ref: dict[str, Any], gcc: dict[str, Any], zig: dict[str, Any], uart: str, input_text: str,
            command: str) -> dict[str, Any]:
    """The export's report: sizes, per-layer checksums of the three runs, class, problems found."""
    names = program.layers
    qemu = parse_uart(uart) if uart else None
    problems = []
    layers = [{"name": n, "kind": k, "storage": "sparse" if (f := program.formats.get(n)) and f.sparse
               else ("dense" if f else "-"), "crc32_reference": f"{c:08x}"}
              for n, k, c in zip(names, program.kinds, ref["crc32"], strict=True)]
    if "crc32" in zig:
        problems.append(_mismatch("zig cc + Unicorn", names, zig["crc32"], ref["crc32"]))
        if zig["class"] != ref["class"]:
            problems.append(f"zig cc + Unicorn predicts class {zig['class']}, the int8 model {ref['class']}")
        for layer, c in zip(layers, zig["crc32"], strict=False):
            layer["crc32_unicorn"] = f"{c:08x}"
    if qemu is not None:
        problems.append(_mismatch("gcc + QEMU", names, [r["crc32"] for r in qemu["layers"]], ref["crc32"]))
        if qemu["class"] != ref["class"]:
            problems.append(f"gcc + QEMU predicts class {qemu['class']}, the int8 model {ref['class']}")
        for layer, r in zip(layers, qemu["layers"], strict=False):
            layer["crc32_qemu"], layer["cycles_qemu"] = f"{r['crc32']:08x}", r["cycles"]
    sizes = [
        {"build": "NAS estimate (candidates.parquet)", "flash_bytes": int(row["flash_bytes"]),
         "sram_bytes": int(row["sram_bytes"]),
         "note": "weights + quantization parameters; peak live tensors"},
        {"build": "zig cc ELF (engine build, run on Unicorn)", "flash_bytes": zig["flash_bytes"],
         "sram_bytes": zig["sram_bytes"],
         "note": f"model, kernels, engine startup; arena + {STACK_BYTES // 1024} KB stack"},
        {"build": "arm-none-eabi-gcc ELF (this project)", "flash_bytes": gcc["flash_bytes"],
         "sram_bytes": gcc["sram_bytes"],
         "note": f"text {gcc['text']} + data {gcc['data']}; data + bss {gcc['bss']} "
                 f"(arena, {STACK_BYTES // 1024} KB stack, per-layer results)"},
    ]
    return {
        "command": command, "candidate": cid, "board": b.name, "board_title": b.title, "sparse": sparse,
        "kernels": kernels, "weights": row.get("weights"), "input": input_text,
        "macs": int(sum(program.macs)),
        "arena_bytes": program.arena_bytes, "sizes": sizes,
        "reference": {"class": ref["class"], "logits": ref["logits"]},
        "unicorn": None if "crc32" not in zig else {
            "class": zig["class"], "instructions": zig["instructions"],
            "bit_exact": zig["crc32"] == ref["crc32"]},
        "qemu": None if qemu is None else {
            "class": qemu["class"], "status": qemu["status"], "dwt": qemu["dwt"],
            "bit_exact": [r["crc32"] for r in qemu["layers"]] == ref["crc32"]},
        "layers": layers, "uart": uart, "problems": [p for p in problems if p],
        "tools": {"gcc": _version("arm-none-eabi-gcc"),
                  "qemu": _version("qemu-system-arm") if uart else None},
    }


def _version(name: str) -> str:
    res = subprocess.run([name, "--version"], capture_output=True, text=True, check=False)
    return (res.stdout.splitlines() or [""])[0]


def size_table(report: dict[str, Any]) -> str:
    rows = [[s["build"], s["flash_bytes"], f"{s['flash_bytes'] / 1024:.1f}", s["sram_bytes"],
             f"{s['sram_bytes'] / 1024:.1f}"] for s in report["sizes"]]
    return markdown_table(["build", "flash (B)", "flash (KB)", "SRAM (B)", "SRAM (KB)"], rows)


def checks_markdown(report: dict[str, Any]) -> str:
    """The checks the export made, one markdown bullet each."""
    n = len(report["layers"])
    gcc = report["tools"]["gcc"]
    tp = " (CMSIS-NN's sources in third_party/ without warnings)" if report["kernels"] == "cmsis-nn" else ""
    lines = [f"- arm-none-eabi-gcc built the project with `-Wall -Wextra -Werror`{tp} ({gcc})."]
    if report["unicorn"]:
        lines.append(f"- zig cc + Unicorn: {n}/{n} layer CRC-32s equal the integer reference's, class "
                     f"{report['unicorn']['class']} ({report['unicorn']['instructions']:,} instructions).")
    if report["qemu"]:
        lines.append(f"- arm-none-eabi-gcc + `qemu-system-arm -M {report['board']}`: {n}/{n} layer CRC-32s "
                     f"equal the integer reference's, class {report['qemu']['class']} (the int8 model's: "
                     f"{report['reference']['class']}); DWT cycle counter "
                     f"{'running' if report['qemu']['dwt'] else 'not emulated'}.")
    if not report["unicorn"] and not report["qemu"]:
        lines.append("- Not run (--no-run, or no emulator for this board): flash it and compare `check=`.")
    return "\n".join(lines)


def report_markdown(report: dict[str, Any]) -> str:
    """report.md: the size table, the checks, per-layer checksums and the UART output."""
    keys = ("crc32_reference", "crc32_unicorn", "crc32_qemu", "cycles_qemu")
    cols = [k for k in keys if k in report["layers"][0]]
    rows = [[i, r["name"], r["kind"], r["storage"], *(r[k] if r[k] is not None else "n/a" for k in cols)]
            for i, r in enumerate(report["layers"])]
    parts = [f"# Firmware export: candidate {report['candidate']} on {report['board']}", "",
             f"`{report['command']}`", "", "## Sizes", "", size_table(report), "", "## Checks", "",
             checks_markdown(report), "", "## Layers", "",
             markdown_table(["#", "layer", "kind", "storage", *cols], rows)]
    if report["uart"]:
        parts += ["", "## UART output (QEMU)", "", "```", report["uart"].strip(), "```"]
    return "\n".join(parts) + "\n"


def readme(report: dict[str, Any], b: Board, command: str) -> str:
    """The exported folder's README.md (templates: firmware/README.template.md)."""
    if b.qemu_machine:
        how = ("`make run` boots the firmware in QEMU (`apt-get install qemu-system-arm`):\n\n```bash\n"
               f"qemu-system-arm -M {b.qemu_machine} -nographic -semihosting-config enable=on,target=native "
               "-kernel build/firmware.elf\n```\n\nThe UART appears on stdio and the firmware ends QEMU "
               "through semihosting with its status. On a real MPS2+ board (AN500 image) build with "
               "`make SEMIHOSTING=0` (without a debugger the semihosting call would fault), load "
               "`build/firmware.bin` as the application image through the board's configuration drive, and "
               "read UART0 at 115200 baud.")
        example = report["uart"].strip() or "(not run: export without --no-run to see QEMU's output here)"
    else:
        how = ("Connect the board's ST-LINK USB port (CN14), then either\n\n"
               "- `make flash` (`st-flash --reset write build/firmware.bin 0x08000000`; "
               "`apt-get install stlink-tools`), or\n"
               "- copy `build/firmware.bin` to the `DIS_F746NG` USB drive the ST-LINK shows (mass storage); "
               "the board flashes and resets itself.\n\n"
               "Read the UART on the ST-LINK's virtual COM port at 115200 8N1, e.g. "
               "`picocom -b 115200 /dev/ttyACM0` (Linux) and press the black reset button (B2) to run the "
               "model again.")
        example = "\n".join(
            [f"== SparseEngine firmware: candidate {report['candidate']} on {b.name} ==", "..."]
            + [f"layer {i} {r['name']} {r['kind']} crc32=0x{r['crc32_reference']} cycles=<measured>"
               for i, r in enumerate(report["layers"])]
            + ["total cycles=<sum> time_us=<at 216 MHz>",
               f"class={report['reference']['class']} (...) logits=...", "check=PASS ...", "done status=0"])
    values = {
        "title": f"Candidate {report['candidate']}", "board_title": b.title, "board": b.name,
        "board_source": b.source, "command": command, "input": report["input"], "uart": b.uart,
        "board_setup": ("216 MHz from the 25 MHz HSE through the PLL, over-drive, 7 flash wait states, "
                        "ART, caches, USART1" if b.qemu_machine is None
                        else "caches, CMSDK UART0, semihosting exit"),
        "weights": report["weights"] or "see manifest.json",
        "kernels": KERNEL_TEXT.get(report["kernels"], report["kernels"]),
        "sparse": report["sparse"], "n_sparse": sum(r["storage"] == "sparse" for r in report["layers"]),
        "stack_bytes": STACK_BYTES, "how_to_run": how, "example_output": example,
        "clock_mhz": b.clock_hz // 1_000_000, "size_table": size_table(report),
        "checks": checks_markdown(report),
    }
    return Template((FIRMWARE_DIR / "README.template.md").read_text()).substitute(values)
