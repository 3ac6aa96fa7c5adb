"""Customer sign-in by e-mail (SPEC §5 ``/api/auth/...``): ask for a link and a code, exchange
either for a token, sign out everywhere.

The answer to a sign-in request is the same 202 for every well-formed address, known or not,
after the same work (:meth:`booking.customers.Customers.request_sign_in`): nothing tells
whether an address has orders. Requests and code attempts are limited per client IP
(``--sign-in-rate-per-ip``), requests also per address (``--sign-in-rate-per-address`` an hour).

The token is the same kind of JWT as every other (role ``user``), so REST and STOMP keep one
auth path; its subject is the customer's id (``cus_…``) and it carries the address and a token
version (revocation: ``POST /api/auth/revoke``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from booking.clock import iso, utcnow
from booking.customers import Customer
from booking.errors import SignInLimited
from server.api.auth import Access, user_name
from server.api.operations import Operation
from server.api.payloads import json_response, read_model
from server.api.ratelimit import check_sign_in, client_ip_or_peer
from server.auth import Principal, Role
from server.bodies import Email, Request, Timestamp
from server.errors import Problem
from server.keys import BOOKING, SETTINGS, TOKENS


class SignInRequest(Request):
    email: Email


class SignInSent(BaseModel):
    detail: str
    expires_in_s: int = Field(description="how long the link and the code are valid")


class TokenRequest(Request):
    """Either the link's secret, or the address and the code."""

    link: str | None = Field(
        default=None, min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
        description="the secret from the e-mailed link (after `#/signin/`)",
    )  # fmt: skip
    email: Email | None = None
    code: str | None = Field(default=None, pattern=r"^[0-9]{6}$", description="the 6 digits")

    @model_validator(mode="after")
    def _one_way(self) -> TokenRequest:
        if (self.link is None) == (self.email is None or self.code is None):
            raise ValueError("give either `link`, or `email` and `code`")
        if self.link is not None and (self.email is not None or self.code is not None):
            raise ValueError("give either `link`, or `email` and `code`")
        return self


class CustomerToken(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>` or STOMP passcode")
    user: str
    email: str
    role: Literal["user"] = "user"
    expires_at: Timestamp


async def request_sign_in(request: web.Request, _: Principal) -> web.Response:
    check_sign_in(request)
    wanted = await read_model(request, SignInRequest)
    try:
        customers = request.app[BOOKING].customers
        await customers.request_sign_in(wanted.email, client_ip_or_peer(request))
    except SignInLimited as limited:
        problem = Problem.from_booking(limited)
        problem.headers["Retry-After"] = str(limited.extra.get("retry_after_s", 3600))
        raise problem from None
    ttl = request.app[SETTINGS].sign_in_ttl_s
    return json_response(
        SignInSent(
            detail="If the address is right, a sign-in link and code are on their way to it.",
            expires_in_s=ttl,
        ),
        202,
    )


async def exchange(request: web.Request, _: Principal) -> web.Response:
    check_sign_in(request)
    wanted = await read_model(request, TokenRequest)
    customers = request.app[BOOKING].customers
    if wanted.link is not None:
        customer = await customers.redeem_link(wanted.link)
    else:
        assert wanted.email is not None and wanted.code is not None
        customer = await customers.redeem_code(wanted.email, wanted.code)
    return json_response(_token(request, customer), 201)


def _token(request: web.Request, customer: Customer) -> CustomerToken:
    ttl = request.app[SETTINGS].customer_token_ttl_s
    token = request.app[TOKENS].issue(
        customer.id, Role.USER, ttl, email=customer.email, version=customer.token_version
    )
    expires_at = iso(utcnow().replace(microsecond=0) + timedelta(seconds=ttl))
    return CustomerToken(token=token, user=customer.id, email=customer.email, expires_at=expires_at)


async def revoke(request: web.Request, principal: Principal) -> web.Response:
    if principal.email is None:
        raise Problem.of("bad_request", "only a customer signed in by e-mail can sign out "
                         "everywhere; other tokens end when they expire")  # fmt: skip
    customer = await request.app[BOOKING].customers.revoke_tokens(user_name(principal))
    request.app[TOKENS].versions[customer.id] = customer.token_version
    return web.Response(status=204)


OPERATIONS: list[Operation] = [
    Operation("POST", "/api/auth/email", request_sign_in, "E-mail me a sign-in link and code",
              "auth", body=SignInRequest, status=202, response=SignInSent, errors=(429,),
              description="The same answer for every address. The link and the 6-digit code "
              "are valid for --sign-in-ttl-s, once; limited per client IP and per address."),
    Operation("POST", "/api/auth/email/token", exchange, "Exchange a sign-in link or code",
              "auth", body=TokenRequest, status=201, response=CustomerToken,
              errors=(400, 429),
              description="`{link}` or `{email, code}` → a customer token (role user) that "
              "shows every order bought for the address. 400 `sign_in_failed` for a wrong, "
              "expired or used link or code; a request dies after --sign-in-max-attempts wrong "
              "codes."),
    Operation("POST", "/api/auth/revoke", revoke, "Sign out everywhere", "auth",
              access=Access.USER, status=204, errors=(400,),
              description="Every token of this customer issued so far stops working, on REST "
              "and on STOMP CONNECT, on every node within a few seconds."),
]  # fmt: skip
