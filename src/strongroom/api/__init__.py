"""HTTP only: parse, authenticate, call a service, render. The one place errors become HTTP."""
