"""``simam_ref.constants`` is the one home of the tunables; the kernel packages'
old names (``kernels.cpu.BLOCK``, ``kernels.cuda.THREADS_PER_BLOCK``, ...) read it."""

from __future__ import annotations

import pytest

from simam_ref import constants
from simam_ref.kernels import cpu, cuda

PACKAGES = [(cpu, constants.CPU_TUNABLES), (cuda, constants.CUDA_TUNABLES)]


@pytest.mark.parametrize(("module", "names"), PACKAGES, ids=["cpu", "cuda"])
def test_old_tunable_names_read_constants_and_refuse_writes(module, names, monkeypatch):
    for name in names:
        assert getattr(module, name) == getattr(constants, name)
        assert name not in vars(module)  # no second copy on the package
    monkeypatch.setattr(constants, names[0], 7)
    assert getattr(module, names[0]) == 7
    with pytest.raises(AttributeError, match=f"set simam_ref.constants.{names[0]} instead"):
        setattr(module, names[0], 8)
    assert getattr(constants, names[0]) == 7
    with pytest.raises(AttributeError, match="no attribute"):
        module.NOT_A_TUNABLE  # noqa: B018
    module.not_a_tunable = 1  # other names assign as usual
    assert vars(module).pop("not_a_tunable") == 1
