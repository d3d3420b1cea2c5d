"""The five example payloads of Tracify's own page (tracify-events-api.txt), as data.

The conversion example's trailing comma is dropped so that it is valid JSON.
"""

from __future__ import annotations

from typing import Any

IDENTITY = {
    "d6c77f0e3e6c1c276c2e9e6e7e1d8d0a5b4e7c7e3f1e7e7e5d8f7e2e7d5a5d7e": 1,
    "b4e6a7c8d9e0f1d2c3b4a5e6f7e8d9c0b1a2d3e4f5d6c7e8a9b0c1d2e3f4d5c6": 2,
    "e7d6c5b4a3b2c1d0e9f8e7d6c5b4a3d2e1f0d9c8b7a6e5d4c3b2a1d0e9f8c7b6": 3,
    "a5b4c3d2e1f0e9d8c7b6a5d4c3b2e1d0c9b8a7d6e5f4c3b2a1d0e9f8c7b6a5d4": 4,
}
URL = "https://www.yourwebsite.com/your-full-path-here"
CSID = "00000000-0000-0000-0000-000000000000"
CAMPAIGN = {
    "trc_mcmp_id": "1111111111111111111",
    "trc_mag_id": "2222222222222222222",
    "trc_mad_id": "3333333333333333333",
    "utm_medium": "paid",
    "utm_source": "fb",
}


def _event(event_type: str, when: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "url": URL,
        "customer_site_id": CSID,
        "identity_data": dict(IDENTITY),
        "datetime": when,
        "type": event_type,
        "data": data,
    }


PAGEVIEW = _event(
    "pageview",
    "2024-06-21 12:36:37",
    {"Referer": "https://www.referringwebsite.com", "origin": "https://www.yourwebsite.com"}
    | CAMPAIGN,
)
PRODUCTVIEW = _event(
    "productview",
    "2024-06-21 12:36:40",
    {"Referer": "https://www.referringwebsite.com", "origin": "https://www.yourwebsite.com"}
    | CAMPAIGN,
)
ADDTOCART = _event("addtocart", "2024-06-21 12:36:40", {"origin": "https://www.yourwebsite.com"})
PURCHASE = _event(
    "purchase",
    "2024-06-21 12:36:40",
    {
        "origin": "https://www.yourwebsite.com",
        "order_id": "123456789",
        "currency": "EUR",
        "amount": "100.00",
        "ITEM1": "Name of Product 1",
        "AMT1": "25",
        "QTY1": "2",
        "ITEM2": "Name of Product 2",
        "AMT2": "50",
        "QTY2": "1",
    },
)
CONVERSION = _event(
    "conversion",
    "2024-06-21 12:36:40",
    {
        "origin": "https://www.yourwebsite.com",
        "conversion_id": "123456789",
        "currency": "EUR",
        "amount": "100.00",
    },
)
EXAMPLES = {
    "pageview": PAGEVIEW,
    "productview": PRODUCTVIEW,
    "addtocart": ADDTOCART,
    "purchase": PURCHASE,
    "conversion": CONVERSION,
}
