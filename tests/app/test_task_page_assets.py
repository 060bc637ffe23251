"""The task page's assets: every ES module the page imports is in its import map and
modulepreload list (a module missing there would be fetched without its version, or break
under the CSP), and the page holds the markup and styles of its trial types."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import StimulusSet
from app.templating import import_map, make_templates, static_url, task_modules
from tests.app.routes.test_participant_flow import enrol, start_task
from tests.factories import make_experiment, make_launch

STATIC = Path(__file__).resolve().parents[2] / "static"
IMPORT = re.compile(r"""^\s*(?:import|export)\b[^;]*?\bfrom\s+["']([^"']+)["']""", re.M | re.S)


def _imports(module: str) -> set[str]:
    """The modules `module` imports statically, as paths relative to static/."""
    text = (STATIC / module).read_text()
    base = (STATIC / module).parent
    found = set()
    for spec in IMPORT.findall(text):
        assert spec.startswith("."), f"{module} imports {spec}: only relative imports"
        found.add((base / spec).resolve().relative_to(STATIC).as_posix())
    return found


def _reachable(entry: str) -> set[str]:
    seen: set[str] = set()
    todo = [entry]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_imports(module))
    return seen


def test_every_module_the_task_page_imports_is_in_its_import_map() -> None:
    listed = task_modules(STATIC)
    # The runner's static imports, and each type's module, which static/tasks/index.js imports
    # by the trial's `task` when first needed.
    types = [f"tasks/{p.name}" for p in (STATIC / "tasks").glob("*.js") if p.name != "index.js"]
    reachable = _reachable("trial.js").union(*(_reachable(t) for t in types))
    assert {"tasks/index.js", "tasks/afc2.js", "tasks/afc2/input.js", "tasks/rating.js"} <= (
        reachable
    )
    assert reachable <= set(listed), sorted(reachable - set(listed))
    assert len(listed) == len(set(listed))
    assert all((STATIC / name).is_file() for name in listed)
    mapped = json.loads(import_map(STATIC))["imports"]
    assert mapped == {f"/static/{m}": static_url(STATIC, m) for m in listed}
    assert all("?v=" in url for url in mapped.values())


def test_the_task_page_holds_its_trial_types_markup_styles_and_modules(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": "assets-1"})
    start_task(client, token)
    page = client.get(f"/p/{token}").text
    assert page.count('data-task-type="afc2"') == 1
    assert page.count("data-stage ") + page.count("data-stage>") == 1
    assert page.count("data-stage-wrap") == 1
    assert page.count("data-key-hint") == 1
    assert 'href="/static/tasks/afc2/afc2.css?v=' in page
    preloaded = re.findall(r'<link rel="modulepreload" href="/static/([^"?]+)\?v=', page)
    assert set(preloaded) == set(task_modules(STATIC))
    assert preloaded[0] == "trial.js"


def test_the_rating_markup_holds_what_its_module_reads() -> None:
    """templates/tasks/rating.html has every element static/tasks/rating.js queries, one stage,
    the slider closed until the answer may be given, and only rating- classes of its own (the
    task page's shared ones aside): afc2's unscoped classes cannot style it."""
    root = STATIC.parent
    env = make_templates(root / "templates", STATIC).env
    markup = env.from_string(
        '{% import "tasks/rating.html" as m %}{{ m.head() }}\n{{ m.screen() }}'
    ).render()
    assert 'href="/static/tasks/rating/rating.css?v=' in markup
    assert markup.count('data-task-type="rating"') == 1
    assert markup.count("data-stage ") + markup.count("data-stage>") == 1
    module = (STATIC / "tasks" / "rating.js").read_text()
    queried = {a or b for a, b in re.findall(r"""\bq\((?:'([^']+)'|"([^"]+)")\)""", module)}
    assert {"[data-rating-slider]", '[data-rating-grid="natural"]', "[data-stage]"} <= queried
    for selector in queried:
        assert selector[1:-1] in markup, selector
    slider = re.search(r"<input[^>]*data-rating-slider[^>]*>", markup)
    assert slider is not None
    assert 'type="range"' in slider.group() and "disabled" in slider.group()
    submit = re.search(r"<button[^>]*data-rating-submit[^>]*>", markup)
    assert submit is not None and "disabled" in submit.group()
    assert "How intuitive are these images?" in markup
    assert "Synthetic images" in markup and "Natural images" in markup
    shared = {"task-type", "task-question", "task-keys", "stage-wrap", "stage"}
    classes = {c for attr in re.findall(r'class="([^"]*)"', markup) for c in attr.split()}
    assert {c for c in classes - shared if not c.startswith("rating-")} == set()
