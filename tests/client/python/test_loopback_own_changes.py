"""examples/python/own_changes.py, the Python loopback's record of its own
changes: when two changes of one path finish at once, the state recorded
last is the newest, so that the newer change's event is still explained.

(The loopback example ships with the SDK; its integration tests are in
tests/integration. This one needs no mount.)
"""

import importlib.util
import os
import tempfile
import threading

from conftest import REPO


def _own_changes_module():
    path = os.path.join(REPO, "examples", "python", "own_changes.py")
    spec = importlib.util.spec_from_file_location("own_changes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_newest_of_two_changes_finishing_at_once_is_what_is_recorded():
    own_changes = _own_changes_module()
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "f"), "wb") as f:
            f.write(b"written")
        root = os.open(d, os.O_PATH | os.O_DIRECTORY)
        try:
            own = own_changes.OwnChanges(root)
            read_state = own._state
            first_read = threading.Event()
            chmod_recorded = threading.Event()
            calls = []

            def state_then_pause(path):
                # The first record (a release, say) reads the state, and
                # another change (a chmod) runs and records before the
                # first one stores what it read.
                state = read_state(path)
                calls.append(threading.current_thread().name)
                if len(calls) == 1:
                    first_read.set()
                    # With the state read under the lock, the chmod's record
                    # cannot finish meanwhile: this wait runs out.
                    chmod_recorded.wait(1.0)
                return state

            own._state = state_then_pause

            def release():
                own.record("/f", 7)

            def chmod():
                first_read.wait()
                os.chmod(os.path.join(d, "f"), 0o600)
                own.record("/f", 7)
                chmod_recorded.set()

            threads = [threading.Thread(target=release, name="release"),
                       threading.Thread(target=chmod, name="chmod")]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            own._state = read_state
            # The chmod's event, seen now, is the loopback's own change.
            assert own.explained_by(b"/f") == 7
        finally:
            os.close(root)
