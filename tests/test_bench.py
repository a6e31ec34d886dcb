"""Smoke test of the benchmark harness (structure only, no timing thresholds)."""

from __future__ import annotations

import argparse
import json

import pytest

from simam_ref import bench


def run_bench(capsys, *argv: str) -> dict:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(list(argv))) == 0
    captured = capsys.readouterr()
    assert "[1/" in captured.err  # progress on stderr
    return json.loads(captured.out)


def check_ratios(res: dict) -> None:
    t, q = res["times_s"], res["ratios"]
    assert t["kernel"] > 0
    assert q["kernel/copy"] == pytest.approx(t["kernel"] / t["copy"])
    if t["numpy"] is not None:
        assert q["numpy/kernel"] == pytest.approx(t["numpy"] / t["kernel"])
    for name in ("torch_eager", "torch_compile"):
        key = "eager/kernel" if name == "torch_eager" else "compile/kernel"
        if t[name] is None:
            assert q[key] is None and name in res["unavailable"]
        else:
            assert q[key] == pytest.approx(t[name] / t["kernel"])
    assert res["kernel_gbps"] == pytest.approx(res["bytes"] / t["kernel"] / 1e9)


def test_quick_json_structure(capsys):
    report = run_bench(capsys, "--quick", "--json", "--no-torch", "--backward")
    m = report["machine"]
    for key in ("cpu", "isa", "cores", "numba_threads", "date", "numba", "numpy"):
        assert key in m
    assert m["isa"] in ("AVX-512", "AVX2", "other")
    assert report["config"]["layout"] == "nchw"
    assert report["config"]["dtype"] == "float32"
    assert [r["pass"] for r in report["results"]] == ["forward", "backward"]
    for res in report["results"]:
        assert res["shape"] == list(bench.QUICK_SHAPE)
        assert set(res["times_s"]) == {"kernel", *bench.BASELINES}
        assert res["times_s"]["torch_eager"] is None
        check_ratios(res)
    fwd, bwd = report["results"]
    assert bwd["bytes"] == fwd["bytes"] * 3 // 2


def test_quick_with_torch_and_no_numpy(capsys):
    pytest.importorskip("torch")
    report = run_bench(capsys, "--quick", "--json", "--no-numpy", "--dtype", "float64",
                       "--method", "exact", "--shape", "1,2,3,4", "--no-compile")
    (res,) = report["results"]
    assert res["times_s"]["numpy"] is None and "numpy" in res["unavailable"]
    assert res["times_s"]["torch_eager"] is not None
    assert "torch_compile" in res["unavailable"]
    check_ratios(res)


def test_table_and_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "ratios.png"
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["--quick", "--no-torch", "--plot", str(png)])) == 0
    out = capsys.readouterr().out
    assert "k/copy" in out and "x".join(map(str, bench.QUICK_SHAPE)) in out
    assert png.stat().st_size > 1000


def test_shape_parser_rejects_bad_input():
    with pytest.raises(argparse.ArgumentTypeError):
        bench._shape("3,4")
    assert bench._shape("2,3,4,5") == (2, 3, 4, 5)


def test_isa_name_from_flags():
    assert bench.isa_name({"avx2", "avx512f", "fma"}) == "AVX-512"
    assert bench.isa_name({"avx", "avx2"}) == "AVX2"
    assert bench.isa_name({"neon"}) == "other"


def test_quick_channels_last(capsys):
    pytest.importorskip("torch")
    report = run_bench(capsys, "--quick", "--json", "--layout", "nhwc", "--no-compile",
                       "--backward")
    assert report["config"]["layout"] == "nhwc"
    for res in report["results"]:
        assert res["times_s"]["numpy"] is not None and res["times_s"]["torch_eager"] is not None
        check_ratios(res)


def test_table_header_names_machine(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["--quick", "--no-torch", "--no-numpy"])) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "ISA=" in header and "numba threads=" in header and "layout=nchw" in header
