"""The login page: a plain form posted to ``/login``, with no script and nothing loaded from
elsewhere, so it works on a display without internet access and with scripts off. It is also
what a browser gets (with status 401) for a page it may not see yet, so that logging in
brings it back to that page (the ``next`` field)."""

from __future__ import annotations

from html import escape

__all__ = ["LOGIN_HEADERS", "login_page"]

#: Headers of the page: nothing but its own inline style runs, it is never framed by another
#: site (clickjacking), and it posts only to this server.
LOGIN_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamrec: log in</title>
<style>
  body {{ margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center;
         background: #111; color: #eee; font-family: system-ui, "DejaVu Sans", Arial, sans-serif; }}
  form {{ display: flex; flex-direction: column; gap: 0.8em; width: min(22em, 90vw); }}
  input, button {{ font-size: 1.2em; padding: 0.5em; border-radius: 0.3em; border: 1px solid #555; }}
  button {{ background: #2a6; color: #fff; border: none; }}
  p.error {{ color: #f66; margin: 0; }}
</style>
</head>
<body>
<form method="post" action="/login">
  <h1>streamrec</h1>
  {message}
  <label>User <input id="user" name="user" autocomplete="username" required autofocus></label>
  <label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
  <input type="hidden" name="next" value="{next}">
  <button type="submit">Log in</button>
</form>
</body>
</html>
"""


def login_page(next_path: str, message: str = "") -> str:
    """The page, returning to ``next_path`` after the login, with ``message`` (an error) above."""
    shown = f'<p class="error" id="error">{escape(message)}</p>' if message else ""
    return _PAGE.format(message=shown, next=escape(next_path, quote=True))
