"""Notifications: a namespace's NotificationPolicy turns the Events the controllers plan into signed webhook and
Slack messages, delivered from a bounded queue in the operator process so that no reconcile waits on a receiver.

`triggers` maps a planned Event to a trigger, `payload` builds the JSON and Slack bodies (pure), `signing` signs
them, `routing` picks the destinations of a namespace's policies (pure), `delivery` sends with retries.
"""
