"""The driver API: the REST adapter (/api/v1/) the operator's WeChat H5 pages call, and
those pages. Like `protocol`, it sits on top of the core: it translates requests into
services and selectors of orgs / stations / billing and their answers into JSON."""
