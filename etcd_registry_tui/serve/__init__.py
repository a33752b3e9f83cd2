"""The browser view (``serve``): the server, its guard (token, Host, Origin, sizes), the
network limits and a tab's process."""
