"""`invoke --list` shows the first line of each task's docstring: it must be a whole
sentence (review-op s19: several were cut mid-sentence, "…integrity_check, then")."""

from tests.helpers import run_here


def test_every_task_in_the_list_reads_as_a_whole_sentence(tmp_path):
    import tasks

    cut = []
    for name in tasks.ns.task_names:
        first = (tasks.ns[name].__doc__ or "").strip().splitlines()[0].rstrip()
        if not first.endswith((".", ")")):
            cut.append(f"{name}: {first}")
    assert cut == []
    listing = run_here("--list", cwd=tmp_path)
    assert listing.returncode == 0, listing
    assert "then\n" not in listing.stdout
