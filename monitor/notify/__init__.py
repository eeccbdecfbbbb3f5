"""Delivery channels. Each sends one rendered digest and raises DeliveryError (retry later) or
PermanentDeliveryError (retrying will not help); the relay in ``service.py`` records the outcome."""
