"""The watchlist and the matcher: who is on the list, and who a face is.

``store`` keeps people and their embeddings durably (SQLite); ``index`` builds Annoy indexes of
them; ``search`` finds the nearest and runner-up person; ``matcher`` serves a long-running
process; ``enroll`` decides which photos may enter; ``calibrate`` proposes a threshold.
The on-disk format and the measurements behind the defaults are in docs/watchlist.md.
"""

from streamrec.match.matcher import Match, Matcher, MatcherStatus
from streamrec.match.store import Person, Watchlist, WatchlistError

__all__ = ["Match", "Matcher", "MatcherStatus", "Person", "Watchlist", "WatchlistError"]
