"""Outputs are checked on storage before ``status.json`` marks a scene complete (issue 10, defect 4)."""

import pytest

from tracklift import storage
from tracklift.labeling import OutputLayout
from tracklift.labeling.outputs import OutputsMissing, output_sizes


def test_an_output_missing_from_storage_after_writing_is_an_error(tmp_path):
    layout = OutputLayout(str(tmp_path))
    here, lost = layout.url("scenes/a/x.txt"), layout.url("shards/stage1/a.parquet")
    storage.write_text(here, "12345")
    assert output_sizes(layout, [here]) == {"scenes/a/x.txt": 5}
    with pytest.raises(OutputsMissing, match="stage1/a.parquet"):
        output_sizes(layout, [here, lost])
