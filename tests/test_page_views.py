"""What the first page and the Runs tab show, as plain functions: dataset cards (kind, pictures,
size, mosaic), the runs table's sizes, a run's settings as a table, the active-runs line."""
import json

from conftest import write_colour_classes
from studio.datasets.overview import THUMB, dataset_cards, picture_count
from studio.run_disk import drop_resume_state, folder_bytes, free_disk, human_size
from studio.ui.runs_tab import run_details, runs_frame
from studio.ui.start_tab import active_runs_html, card_caption
from studio.workspace import Workspace


def test_picture_counts_leave_out_segmentation_pixel_counts():
    assert picture_count({"counts": {"train": {"a": 3, "b": 4}, "valid": {"a": 1}}}) == 8
    assert picture_count({"counts": {"images": 120, "pixels": {"background": 408072}}}) == 120


def test_a_dataset_card_has_its_kind_pictures_size_and_a_square_mosaic(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    folder = ws.dataset_dir("colours")
    write_colour_classes(folder / "train", per_class=3, size=20)
    (folder / "dataset.json").write_text(json.dumps({"kind": "classify", "counts": {"train": {"r": 3, "g": 3, "b": 3}}}))
    (card,) = dataset_cards(ws)
    assert (card["name"], card["kind"], card["pictures"]) == ("colours", "classify", 9)
    assert card["bytes"] == folder_bytes(folder) > 0 and card["mosaic"].size == (THUMB, THUMB)
    assert card_caption(card).startswith("colours · classify · 9 pictures · ")


def test_runs_show_their_size_and_settings_and_the_first_page_the_active_ones():
    record = {"id": "r1", "name": "first", "kind": "train", "status": "running", "task": "classify",
              "dataset": "digits", "epoch": 1, "epochs": 3, "eta_s": 65, "config": {"lr": 0.003, "extra": {}}}
    frame = runs_frame([record], {"r1": 3 * 1024 * 1024})
    assert frame.iloc[0]["size"] == "3.0 MB"
    details = run_details(record, 3 * 1024 * 1024)
    assert "| lr | 0.003 |" in details and "| dataset | digits |" in details and "3.0 MB on disk" in details
    assert "1:05 left" in active_runs_html([record])
    assert active_runs_html([dict(record, status="completed")]) == "<p>No run in progress.</p>"


def test_a_completed_run_drops_its_resume_state_and_free_disk_keeps_the_record(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"x" * 1000)
    (run / "metrics.jsonl").write_text("{}\n")
    assert drop_resume_state(run) == 0  # no best.pt: last.pt is all there is, so it stays
    (run / "checkpoints" / "best.pt").write_bytes(b"y" * 100)
    assert drop_resume_state(run) == 1000 and not (run / "checkpoints" / "last.pt").exists()
    assert free_disk(run) == 100 and not (run / "checkpoints").exists() and (run / "metrics.jsonl").is_file()
    assert human_size(1536) == "1.5 KB"
