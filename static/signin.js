// The sign-in page (static/signin.html): posts the form to /api/session, then goes on.
(() => {
  const params = new URLSearchParams(location.search);
  // Where to go once signed in: the server checked ?next= (server/guard/next_path.py)
  // and left only a path on this site (or "/").
  const next = document.body.dataset.next || "/";
  const message = document.getElementById("signin-message");
  if (params.has("signed_out")) { message.textContent = "You are signed out."; message.className = "message good"; }
  else if (params.has("next")) { document.getElementById("signin-context").textContent = "Your session has ended. Sign in to continue where you were."; }

  const form = document.getElementById("signin");
  const button = document.getElementById("signin-button");
  const error = document.getElementById("signin-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const username = String(data.get("username") || "").trim();
    const password = String(data.get("password") || "");
    if (!username || !password) {
      error.textContent = !username ? "Enter your user name." : "Enter your password.";
      document.getElementById(!username ? "username" : "password").focus();
      return;
    }
    error.textContent = "";
    button.disabled = true;
    button.textContent = "Signing in…";
    try {
      const r = await fetch("/api/session", {method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-Requested-With": "cellhub"},
        body: JSON.stringify({username, password})});
      if (r.ok) { location.assign(next); return; }
      error.textContent = r.status === 401 ? "Wrong user name or password."
        : r.status === 429 ? "Too many sign-in attempts. Try again in " + (r.headers.get("Retry-After") || "a few") + " seconds."
        : "Sign-in failed (HTTP " + r.status + "). Please try again.";
      document.getElementById("password").select();
    } catch (e) {
      error.textContent = "The server cannot be reached. Check that it is running, then try again.";
    }
    button.disabled = false;
    button.textContent = "Sign in";
  });
})();
