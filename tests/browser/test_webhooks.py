"""The admin console's Webhooks panel: an admin registers a webhook to a real HTTP endpoint, an
order is paid, and the delivery shows in the panel's log (event id, type, HTTP status,
attempts), refreshed without reloading the page."""

from __future__ import annotations

import hashlib
import hmac
import json

from playwright.sync_api import expect

from tests.browser.conftest import Pages, admin_token, buy_via_api, create_event, element
from tests.cluster.conftest import wait_until
from tests.conftest import ServerProcess, free_port
from tests.server.test_integration_events import Receiver


def test_a_paid_order_shows_in_the_webhook_delivery_log(
    ui_server: ServerProcess, pages: Pages
) -> None:
    # The endpoint refuses the first POST (HTTP 500), then takes it: one retry.
    receiver = Receiver(free_port(), refuse=1)
    receiver.start()
    try:
        event = create_event(ui_server, "Webhook Night")
        admin = pages.open(ui_server.http_url + "/admin", "admin-webhooks")
        element(admin, "admin-token").fill(admin_token(ui_server))
        element(admin, "admin-login").click()
        admin.get_by_role("link", name="Webhooks").click()
        expect(element(admin, "webhooks-panel")).to_be_in_viewport()

        element(admin, "webhook-url").fill(f"http://127.0.0.1:{receiver.port}/hook")
        element(admin, "webhook-event-order.paid").check()
        element(admin, "webhook-create").click()
        secret = element(admin, "webhook-secret").inner_text().strip()
        assert len(secret) >= 16, secret
        expect(element(admin, "webhook-list")).to_contain_text("order.paid")
        expect(element(admin, "webhook-deliveries-empty")).to_be_visible()

        order = buy_via_api(ui_server, "webhook-buyer", event, ["S-A-1"])

        # The log, polled by the page, shows the delivery once the endpoint took it.
        row = element(admin, "webhook-delivery")
        expect(row).to_have_count(1)
        expect(row).to_have_attribute("data-status", "sent", timeout=30_000)
        expect(row).to_contain_text("order.paid")
        expect(row.get_by_test_id("webhook-delivery-status")).to_have_text("sent · HTTP 204")
        expect(row.locator("td").nth(4)).to_have_text("2")  # the refused attempt, then this one
        pages.snap(admin, "webhook-delivered")

        headers, body = wait_until(lambda: receiver.requests[1:], 10, "the second POST")[0]
        paid = json.loads(body)
        assert (paid["type"], paid["data"]["order_id"]) == ("order.paid", order["order_id"])
        expect(row).to_have_attribute("data-event-id", paid["id"])
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Concert-Hub-Signature"] == f"sha256={expected}"
    finally:
        receiver.stop()
