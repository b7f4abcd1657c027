"""The review app's routers: login (``auth``), curators' pages (``pages``), admin pages (``admin``),
item images (``images``) and the JSON API with the metrics (``api``)."""
