"""zoomreel front ends: REST (Falcon on waitress), CLI, web page."""
