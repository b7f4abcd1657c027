-- The Prefect server gets its own database beside chromata's review queue.
CREATE DATABASE prefect OWNER chromata;
