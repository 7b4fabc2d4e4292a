"""Logins and keys of the demo data (no Django imports: the launcher prints them)."""

DEMO_USER = ("demo", "demo-password")
DEMO_STAFF = ("adops", "adops-password")
HOME_KEY = "pk_demo_home_top"
ARTICLE_KEY = "pk_demo_article_side"
