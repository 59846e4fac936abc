"""The accessible name of every control on a page, as Chromium computes it for screen readers.

Each ``input``, ``select``, ``textarea``, ``button``, link and focusable element
of the DOM is looked up in Chromium's accessibility tree (the DevTools protocol's
``Accessibility.getPartialAXTree``), so the name is the browser's own
computation (``<label for>``, a wrapping label, ``aria-label``, a button's text),
not a re-implementation of the rules. Controls hidden from the tree (``display:
none``) are listed as ignored.
"""

from __future__ import annotations

from typing import Any

CONTROLS = "input, select, textarea, button, a[href], [tabindex], [role]"
INTERACTIVE_ROLES = {"button", "checkbox", "combobox", "listbox", "link", "menuitem", "radio",
                     "searchbox", "slider", "spinbutton", "switch", "tab", "textbox"}


def controls(page: Any) -> list[dict[str, Any]]:
    """``[{"what", "role", "name", "ignored"}]`` for each control of ``page`` (Playwright),
    ``what`` being its tag, id and type as in the page's source."""
    cdp = page.context.new_cdp_session(page)
    try:
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        found = []
        for node_id in cdp.send("DOM.querySelectorAll",
                                {"nodeId": root, "selector": CONTROLS})["nodeIds"]:
            node = cdp.send("DOM.describeNode", {"nodeId": node_id})["node"]
            attributes = node.get("attributes", [])
            attributes = dict(zip(attributes[::2], attributes[1::2]))
            what = node["localName"] + "".join(
                f"[{k}={attributes[k]}]" for k in ("id", "type", "class") if attributes.get(k))
            ax = cdp.send("Accessibility.getPartialAXTree",
                          {"nodeId": node_id, "fetchRelatives": False})["nodes"][0]
            found.append({"what": what, "role": ax.get("role", {}).get("value"),
                          "name": (ax.get("name", {}).get("value") or "").strip(),
                          "ignored": bool(ax.get("ignored"))})
        return found
    finally:
        cdp.detach()


def unnamed_controls(page: Any) -> list[str]:
    """The shown controls (an interactive role, not hidden) that have no accessible name."""
    return [c["what"] for c in controls(page)
            if not c["ignored"] and c["role"] in INTERACTIVE_ROLES and not c["name"]]


def shown_controls(page: Any) -> dict[str, str]:
    """``{what: name}`` of the shown interactive controls."""
    return {c["what"]: c["name"] for c in controls(page)
            if not c["ignored"] and c["role"] in INTERACTIVE_ROLES}
